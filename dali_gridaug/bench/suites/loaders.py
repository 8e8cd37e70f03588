"""End-to-end loaders on the same JPEG files.

* ``torchvision``: ``ImageFolder`` + ``DataLoader`` (PIL decode, RandomResizedCrop, flip,
  ToTensor, Normalize), alone and followed by each reference augmentation on the device.
* ``dali-cpu``, ``dali-gpu``: ``create_loader`` without and with each augmentation (the
  default backend, then each backend by name).
* ``acceptance``: side by side on DALI's CPU backend: a hand-written bare DALI pipeline, ours
  without augmentation, with CutMix, GridMix and GridMask (p=1, no ramp), and the torchvision
  DataLoader using every core (the same crop, flip and normalization).
* ``sweep-threads``, ``sweep-batch``, ``sweep-hw-decoder``: our pipeline, no augmentation.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import torch

from dali_gridaug.bench.reference import REFERENCES, build, gridmask_d
from dali_gridaug.bench.registry import Benchmark, Settings, proc_cpu_seconds, suite
from dali_gridaug.constants import IMAGENET_MEAN, IMAGENET_STD

AUGS: tuple[str, ...] = (
    "gridmask",
    "random_gridmask",
    "cutout",
    "random_erasing",
    "cutmix",
    "gridmix",
    "deit",
)


def our_augment(name: str, backend: str, image_size: int) -> Any:
    """The library's ImageNet configuration of ``name``, applied to every sample (apply
    probability 1, GridMask's epoch ramp off), so the cost is the worst case;
    ``random_gridmask`` is GridMask with each square dropped with probability 0.5.
    """
    from dali_gridaug.augment import CutMix, Cutout, GridMask, GridMix, RandomErasing

    def gridmask(square_p: float = 1.0) -> Any:
        return GridMask(
            r=0.6,
            d=gridmask_d(image_size),
            rotate=360,
            p=1.0,
            ramp_epochs=0,
            square_p=square_p,
            backend=backend,
        )

    return {
        "gridmask": gridmask,
        "random_gridmask": lambda: gridmask(square_p=0.5),  # half the squares dropped
        "cutout": lambda: Cutout(length=max(1, image_size // 2), p=1.0, backend=backend),
        "random_erasing": lambda: RandomErasing(p=1.0, backend=backend),
        "cutmix": lambda: CutMix(alpha=1.0, p=1.0, backend=backend),
        "gridmix": lambda: GridMix(n=4, p=0.8, backend=backend),
    }[name]()


def our_augments(name: str, backend: str, image_size: int) -> list[Any]:
    """:func:`our_augment`'s single augmentation, or a recipe's list: ``deit`` is timm's
    DeiT/ImageNet recipe, RandomErasing (p 0.25, noise) then Mixup/CutMix (timm's defaults).
    """
    if name == "deit":
        from dali_gridaug.augment import MixupCutMix, RandomErasing

        return [RandomErasing(p=0.25, backend=backend), MixupCutMix(backend=backend)]
    return [our_augment(name, backend, image_size)]


def gpu_skip(settings: Settings) -> str | None:
    """Why a GPU configuration cannot run here, or None."""
    if settings.device != "gpu":
        return "a CPU run (--device cpu, or no CUDA GPU)"
    return None if torch.cuda.is_available() else "no CUDA GPU on this machine"


def endless(loader: Any) -> Iterator[Any]:
    """The batches of ``loader``, epoch after epoch (re-iterated when one ends)."""
    while True:
        yield from loader


class TorchvisionLoader(Benchmark):
    """torchvision ``DataLoader`` with ``workers`` processes, then optionally ``ref``."""

    def __init__(self, settings: Settings, ref: str | None = None, device: str | None = None):
        super().__init__(settings)
        self.ref = ref
        self.dev = torch.device("cuda" if (device or settings.device) == "gpu" else "cpu")

    @classmethod
    def skip_reason(cls, settings: Settings, params: dict[str, Any]) -> str | None:
        if params.get("ref") == "cutmix[timm]":
            try:
                import timm  # noqa: F401
            except ImportError:
                return "timm is not installed"
        return None

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
        sampler = torch.utils.data.RandomSampler(ds, replacement=True, num_samples=1 << 30)
        loader = torch.utils.data.DataLoader(
            ds,
            batch_size=s.batch_size,
            sampler=sampler,
            num_workers=s.workers,
            pin_memory=self.dev.type == "cuda",
            drop_last=True,
        )
        self.it = iter(loader)
        self.fn = None
        if self.ref is not None:
            self.fn = build(
                self.ref,
                image_size=s.image_size,
                num_classes=len(ds.classes),
                device=self.dev,
                seed=s.seed,
            )

    def run(self) -> None:
        for _ in range(self.settings.batches):
            x, y = next(self.it)
            x, y = x.to(self.dev, non_blocking=True), y.to(self.dev, non_blocking=True)
            if self.fn is not None:
                self.fn(x, y)

    def cpu_seconds(self) -> float:
        workers = getattr(self.it, "_workers", None) or []
        return time.process_time() + sum(proc_cpu_seconds(w.pid) for w in workers)

    def teardown(self) -> None:
        if hasattr(getattr(self, "it", None), "_shutdown_workers"):
            self.it._shutdown_workers()
        self.it = None

    def describe(self) -> dict[str, Any]:
        ref = f" + {REFERENCES[self.ref]} on {self.dev.type}" if self.ref else ""
        return {
            "implementation": "torchvision ImageFolder + DataLoader (PIL; RandomResizedCrop, "
            f"flip, ToTensor, Normalize), {self.settings.workers} workers{ref}"
        }


class GridaugLoader(Benchmark):
    """Our ``create_loader`` on ``device`` with at most one augmentation."""

    def __init__(
        self,
        settings: Settings,
        device: str,
        aug: str | None = None,
        backend: str = "auto",
        threads: int | None = None,
        batch_size: int | None = None,
        hw_decoder_load: float | None = None,
    ) -> None:
        super().__init__(settings)
        self.device, self.aug, self.backend = device, aug, backend
        self.threads = threads or settings.workers
        self.batch_size = batch_size or settings.batch_size
        self.kwargs = {} if hw_decoder_load is None else {"hw_decoder_load": hw_decoder_load}
        # the same images per run whatever the batch size
        self.batches = max(1, round(self.images_per_run / self.batch_size))
        self.images_per_run = self.batches * self.batch_size

    @classmethod
    def skip_reason(cls, settings: Settings, params: dict[str, Any]) -> str | None:
        return gpu_skip(settings) if params["device"] == "gpu" else None

    def setup(self) -> None:
        from dali_gridaug import create_loader

        s = self.settings
        augs = our_augments(self.aug, self.backend, s.image_size) if self.aug else []
        self.augments = augs
        self.loader = create_loader(
            s.root,
            batch_size=self.batch_size,
            image_size=s.image_size,
            augment=augs,
            device=self.device,
            seed=s.seed,
            num_threads=self.threads,
            **self.kwargs,
        )
        self.it = endless(self.loader)

    def run(self) -> None:
        for _ in range(self.batches):
            next(self.it)

    def sync(self) -> None:
        if self.device == "gpu":
            torch.cuda.synchronize()

    def teardown(self) -> None:
        self.it = self.loader = None

    def describe(self) -> dict[str, Any]:
        aug = "".join(
            f" + {type(a).__name__} (backend {a.resolve_backend()})" for a in self.augments
        )
        return {
            "implementation": f"dali_gridaug.create_loader(device={self.device!r}), "
            f"{self.threads} threads, batch {self.batch_size}{aug}",
            "augment": ", ".join(map(repr, self.augments)) or None,
            **self.kwargs,
        }


class BareDali(Benchmark):
    """A hand-written DALI pipeline on the CPU backend: file reader, random-resized-crop
    decode, resize, flip + normalize to CHW float32; iterated as torch tensors.
    """

    def setup(self) -> None:
        from nvidia.dali import fn, pipeline_def, types
        from nvidia.dali.plugin.pytorch import DALIGenericIterator

        s = self.settings

        @pipeline_def(
            batch_size=s.batch_size,
            num_threads=s.workers,
            device_id=None,
            seed=s.seed,
            prefetch_queue_depth=2,
            exec_dynamic=True,
        )
        def bare() -> Any:
            jpegs, labels = fn.readers.file(file_root=s.root, random_shuffle=True, name="R")
            im = fn.decoders.image_random_crop(
                jpegs,
                device="cpu",
                output_type=types.RGB,
                random_area=[0.08, 1.0],
                random_aspect_ratio=[0.75, 4 / 3],
            )
            im = fn.resize(im, size=[s.image_size] * 2, antialias=True)
            x = fn.crop_mirror_normalize(
                im,
                dtype=types.FLOAT,
                output_layout="CHW",
                mean=list(IMAGENET_MEAN),
                std=list(IMAGENET_STD),
                mirror=fn.random.coin_flip(),
            )
            return x, labels

        pipe = bare()
        pipe.build()
        self.it = endless(DALIGenericIterator(pipe, ["x", "y"], reader_name="R", auto_reset=True))

    def run(self) -> None:
        for _ in range(self.settings.batches):
            next(self.it)

    def teardown(self) -> None:
        self.it = None

    def describe(self) -> dict[str, Any]:
        return {
            "implementation": "hand-written DALI pipeline (readers.file, "
            "decoders.image_random_crop, resize, crop_mirror_normalize), CPU backend"
        }


class Acceptance(Benchmark):
    """Dispatch of the acceptance suite's configurations (all on DALI's CPU backend)."""

    def __new__(cls, settings: Settings, kind: str, aug: str | None = None) -> Any:  # noqa: D102
        if kind == "bare":
            return BareDali(settings)
        if kind == "torchvision":
            return TorchvisionLoader(settings, device="cpu")
        return GridaugLoader(settings, device="cpu", aug=aug)


def _loaders(device: str):
    def grid(s: Settings) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {"no-aug": {"device": device}}
        for a in AUGS:
            out[f"+{a}"] = {"device": device, "aug": a}
            out.update(
                {
                    f"+{a}[{b}]": {"device": device, "aug": a, "backend": b}
                    for b in ("dali", "kernel")
                }
            )
        return out

    return grid


suite(
    "torchvision",
    lambda s: {"baseline": {}, **{f"+{r}": {"ref": r} for r in REFERENCES}},
    baseline="baseline",
)(TorchvisionLoader)
suite("dali-cpu", _loaders("cpu"), baseline="no-aug")(GridaugLoader)
suite("dali-gpu", _loaders("gpu"), baseline="no-aug")(GridaugLoader)
suite(
    "acceptance",
    lambda s: {
        "bare-dali": {"kind": "bare"},
        "no-aug": {"kind": "ours"},
        **{a: {"kind": "ours", "aug": a} for a in ("cutmix", "gridmix", "gridmask")},
        "torchvision": {"kind": "torchvision"},
    },
    baseline="no-aug",
)(Acceptance)


class Sweep(GridaugLoader):
    """Our pipeline without augmentation on the run's device, one parameter varied."""

    @classmethod
    def skip_reason(cls, settings: Settings, params: dict[str, Any]) -> str | None:
        if "hw_decoder_load" in params and settings.device != "gpu":
            return "hw_decoder_load only applies to the GPU ('mixed') JPEG decoder"
        return super().skip_reason(settings, params)


def _powers(n: int) -> list[int]:
    return sorted({*(2**i for i in range(n.bit_length()) if 2**i <= n), n})


def _sweep(key: str, values):
    return lambda s: {f"{key}={v}": {"device": s.device, key: v} for v in values(s)}


suite("sweep-threads", _sweep("threads", lambda s: _powers(s.workers)), sweep="threads")(Sweep)
suite(
    "sweep-batch",
    _sweep(
        "batch_size",
        lambda s: [
            max(2, s.batch_size // 4),
            max(2, s.batch_size // 2),
            s.batch_size,
            2 * s.batch_size,
        ],
    ),
    sweep="batch_size",
)(Sweep)
suite(
    "sweep-hw-decoder",
    _sweep("hw_decoder_load", lambda s: [0.0, 0.25, 0.5, 0.75, 1.0]),
    sweep="hw_decoder_load",
)(Sweep)
