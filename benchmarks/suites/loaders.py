"""End-to-end loader throughput on the same JPEG files.

(a) ``torchvision/baseline``: ``ImageFolder`` + ``DataLoader`` (PIL decode,
RandomResizedCrop, flip, ToTensor, Normalize) with ``--workers`` worker processes;
(b) ``torchvision/+<aug>[<reference>]``: the same plus a reference augmentation applied to
each loaded batch on the training device, as the official training loops do;
(c) ``dali-cpu/…`` and (d) ``dali-gpu/…``: our ``create_loader`` without and with each
augmentation, per backend; then scaling sweeps of our pipeline on the run's device.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from benchmarks.reference import REFERENCES
from benchmarks.reference import build as build_reference
from benchmarks.registry import Benchmark, Settings, benchmark, proc_cpu_seconds
from benchmarks.suites.common import (
    AUGS,
    BACKENDS,
    endless,
    gpu_skip_reason,
    hw_decoder_load,
    our_augment,
)
from dali_gridaug.constants import IMAGENET_MEAN, IMAGENET_STD


class _InfiniteSampler(torch.utils.data.Sampler[int]):
    """Shuffled indices, epoch after epoch, so one DataLoader iterator streams forever."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed = n, seed

    def __iter__(self):  # type: ignore[no-untyped-def]
        g = torch.Generator().manual_seed(self.seed)
        while True:
            yield from torch.randperm(self.n, generator=g).tolist()


def _run_device(settings: Settings) -> torch.device:
    return torch.device("cuda" if settings.device == "gpu" else "cpu")


@benchmark(lambda s: [{"aug": "baseline"}] + [{"aug": r} for r in REFERENCES], name="torchvision")
class TorchvisionLoader(Benchmark):
    """torchvision DataLoader, optionally followed by a reference augmentation."""

    family = "torchvision"

    def __init__(self, settings: Settings, aug: str, workers: int | None = None) -> None:
        super().__init__(settings, aug=aug)
        self.aug = aug
        self.workers = settings.workers if workers is None else workers
        self.device = _run_device(settings)
        self.batches = settings.batches

    @classmethod
    def config_name(cls, params: dict[str, Any]) -> str:
        return "baseline" if params["aug"] == "baseline" else f"+{params['aug']}"

    def setup(self) -> None:
        from torchvision import datasets, transforms

        s = self.settings
        tf = transforms.Compose(
            [
                transforms.RandomResizedCrop(s.image_size),
                transforms.RandomHorizontalFlip(),
                transforms.ToTensor(),
                transforms.Normalize(
                    [m / 255 for m in IMAGENET_MEAN], [v / 255 for v in IMAGENET_STD]
                ),
            ]
        )
        ds = datasets.ImageFolder(s.root, transform=tf)
        loader = torch.utils.data.DataLoader(
            ds,
            batch_size=s.batch_size,
            sampler=_InfiniteSampler(len(ds), s.seed),
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
            drop_last=True,
        )
        self.it = iter(loader)
        self.fn, self.label = (
            (None, "")
            if self.aug == "baseline"
            else build_reference(
                self.aug,
                image_size=s.image_size,
                num_classes=len(ds.classes),
                device=self.device,
                seed=s.seed,
            )
        )

    def run(self) -> None:
        for _ in range(self.batches):
            x, y = next(self.it)
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
            if self.fn is not None:
                self.fn(x, y)

    def cpu_seconds(self) -> float:
        workers = getattr(self.it, "_workers", None) or []
        return time.process_time() + sum(proc_cpu_seconds(w.pid) for w in workers)

    def teardown(self) -> None:
        it = getattr(self, "it", None)
        if it is not None and hasattr(it, "_shutdown_workers"):
            it._shutdown_workers()
        self.it = None

    def describe(self) -> dict[str, Any]:
        s = self.settings
        return {
            "family": "torchvision" if self.aug == "baseline" else "reference",
            "implementation": (
                "torchvision ImageFolder + DataLoader (PIL; RandomResizedCrop, flip, ToTensor, "
                "Normalize)" + (f" + {self.label}, on {self.device.type}" if self.label else "")
            ),
            "augment": None if self.aug == "baseline" else self.aug,
            "batch_size": s.batch_size,
            "image_size": s.image_size,
            "workers": self.workers,
            "device_used": self.device.type,
        }


class DaliLoaderBench(Benchmark):
    """Our ``create_loader`` on ``device`` with at most one augmentation."""

    family = "dali"
    #: the device of this suite's pipelines; None: the run's ``--device``
    fixed_device: str | None = None

    def __init__(
        self,
        settings: Settings,
        aug: str = "none",
        backend: str | None = None,
        batch_size: int | None = None,
        threads: int | None = None,
        image_size: int | None = None,
        hw_decoder_load: float | None = None,
    ) -> None:
        super().__init__(
            settings,
            aug=aug,
            backend=backend,
            batch_size=batch_size,
            threads=threads,
            image_size=image_size,
            hw_decoder_load=hw_decoder_load,
        )
        self.device = self.fixed_device or settings.device
        self.aug, self.backend = aug, backend
        self.batch_size = batch_size or settings.batch_size
        self.threads = threads or settings.workers
        self.image_size = image_size or settings.image_size
        self.hw_load = hw_decoder_load
        # same number of images per run whatever the batch size
        self.batches = max(1, round(settings.images_per_run / self.batch_size))
        self.images_per_run = self.batches * self.batch_size

    @classmethod
    def config_name(cls, params: dict[str, Any]) -> str:
        return "baseline" if params["aug"] == "none" else f"+{params['aug']}[{params['backend']}]"

    @classmethod
    def skip_reason(cls, settings: Settings, params: dict[str, Any]) -> str | None:
        device = cls.fixed_device or settings.device
        return gpu_skip_reason(settings.device) if device == "gpu" else None

    def setup(self) -> None:
        from dali_gridaug import create_loader

        augs = [] if self.aug == "none" else [our_augment(self.aug, self.backend, self.image_size)]
        with hw_decoder_load(self.hw_load):
            self.loader = create_loader(
                self.settings.root,
                batch_size=self.batch_size,
                train=True,
                image_size=self.image_size,
                augment=augs,
                device=self.device,
                seed=self.settings.seed,
                num_threads=self.threads,
            )
        self.it = endless(self.loader)

    def run(self) -> None:
        for _ in range(self.batches):
            next(self.it)

    def sync(self) -> None:
        if self.device == "gpu":
            torch.cuda.synchronize()

    def teardown(self) -> None:
        self.it = None
        self.loader = None

    def describe(self) -> dict[str, Any]:
        from dali_gridaug.constants import HW_DECODER_LOAD

        out: dict[str, Any] = {
            "family": f"dali-{self.device}",
            "implementation": f"dali_gridaug.create_loader(device={self.device!r})"
            + ("" if self.aug == "none" else f" + {self.aug} (backend={self.backend!r})"),
            "augment": None if self.aug == "none" else self.aug,
            "backend": self.backend,
            "batch_size": self.batch_size,
            "image_size": self.image_size,
            "threads": self.threads,
            "device_used": self.device,
        }
        if self.device == "gpu":
            out["hw_decoder_load"] = HW_DECODER_LOAD if self.hw_load is None else self.hw_load
            if self.hw_load is not None:
                out["hw_decoder_load_via"] = "patched dali_gridaug.decode.HW_DECODER_LOAD"
        return out


def _compare_grid(settings: Settings) -> list[dict[str, Any]]:
    return [{"aug": "none", "backend": None}] + [
        {"aug": a, "backend": b} for a in AUGS for b in BACKENDS
    ]


@benchmark(_compare_grid, name="dali-cpu")
class DaliCpu(DaliLoaderBench):
    """(c) our pipeline on DALI's CPU backend."""

    fixed_device = "cpu"


@benchmark(_compare_grid, name="dali-gpu")
class DaliGpu(DaliLoaderBench):
    """(d) our pipeline on the GPU (nvJPEG ``mixed`` decoder)."""

    fixed_device = "gpu"


# ── scaling sweeps: our pipeline, no augmentation, on the run's device ─────────────────────


class _Sweep(DaliLoaderBench):
    axis = ""

    @classmethod
    def config_name(cls, params: dict[str, Any]) -> str:
        return f"{cls.axis}={params[cls.axis]}"

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "sweep": self.axis, "x": self.params[self.axis]}


def _powers_up_to(n: int) -> list[int]:
    vals = [1]
    while vals[-1] * 2 <= n:
        vals.append(vals[-1] * 2)
    return sorted({*vals, n})


@benchmark(
    lambda s: [
        {"batch_size": b}
        for b in sorted(
            {max(2, s.batch_size // 4), max(2, s.batch_size // 2), s.batch_size, s.batch_size * 2}
        )
    ],
    name="sweep-batch",
)
class SweepBatch(_Sweep):
    axis = "batch_size"


@benchmark(lambda s: [{"threads": t} for t in _powers_up_to(s.workers)], name="sweep-threads")
class SweepThreads(_Sweep):
    axis = "threads"


@benchmark(
    lambda s: [
        {"image_size": v}
        for v in sorted(
            {
                max(32, s.image_size * 4 // 7),
                max(32, s.image_size * 5 // 7),
                s.image_size,
                s.image_size * 9 // 7,
            }
        )
    ],
    name="sweep-size",
)
class SweepSize(_Sweep):
    axis = "image_size"


@benchmark(
    lambda s: [{"hw_decoder_load": v} for v in (0.0, 0.25, 0.5, 0.65, 0.75, 0.9, 1.0)],
    name="sweep-hw-decoder",
)
class SweepHwDecoder(_Sweep):
    axis = "hw_decoder_load"

    @classmethod
    def skip_reason(cls, settings: Settings, params: dict[str, Any]) -> str | None:
        if settings.device != "gpu":
            return "hw_decoder_load only applies to the GPU ('mixed') JPEG decoder"
        return gpu_skip_reason(settings.device)


@benchmark(
    lambda s: [{"aug": "baseline", "workers": w} for w in _powers_up_to(s.workers)],
    name="sweep-tv-workers",
)
class SweepTorchvisionWorkers(TorchvisionLoader):
    """torchvision baseline vs DataLoader worker count (the comparison's other side)."""

    @classmethod
    def config_name(cls, params: dict[str, Any]) -> str:
        return f"workers={params['workers']}"

    def __init__(self, settings: Settings, aug: str, workers: int | None = None) -> None:
        super().__init__(settings, aug, workers)
        self.params = {"aug": aug, "workers": workers}
        # fewer workers, fewer batches per run: every point takes about as long
        self.batches = max(1, round(settings.batches * max(1, self.workers) / settings.workers))
        self.images_per_run = self.batches * settings.batch_size

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "sweep": "workers", "x": self.workers}
