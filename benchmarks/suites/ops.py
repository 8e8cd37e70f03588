"""The augmentation alone, on a batch of ``--op-batch`` decoded images already on the device.

Reference implementations (torch, NCHW) against ours: ``[kernel]`` draws the batch's
parameters and runs the ``xp`` kernel directly (NumPy on CPU, CuPy on GPU); ``[dali]`` runs a
minimal DALI pipeline (``external_source`` of the same resident images, zero-copy → our op)
and ``passthrough[dali]`` is that pipeline without the op (its feeding overhead). This is
where the "≥ 20× the official GridMask per-sample loop at batch 256" target is measured.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from benchmarks.reference import REFERENCES
from benchmarks.reference import build as build_reference
from benchmarks.registry import Benchmark, Settings, benchmark
from benchmarks.suites.common import gpu_skip_reason, our_augment

OPS: tuple[str, ...] = (
    "gridmask[official]",
    "gridmask[dali]",
    "gridmask[kernel]",
    "cutmix[clovaai]",
    "cutmix[timm]",
    "cutmix[dali]",
    "cutmix[kernel]",
    "gridmix[torch]",
    "gridmix[dali]",
    "gridmix[kernel]",
    "passthrough[dali]",
)


@benchmark(lambda s: [{"op": op} for op in OPS], name="augment-op")
class AugmentOp(Benchmark):
    """One augmentation applied to one resident batch per run."""

    family = "op"

    def __init__(self, settings: Settings, op: str) -> None:
        super().__init__(settings, op=op)
        self.op = op
        self.aug_name, self.impl = op[:-1].split("[")
        self.b, self.size = settings.op_batch, settings.image_size
        self.images_per_run = self.b
        self.dev = torch.device("cuda" if settings.device == "gpu" else "cpu")

    @classmethod
    def config_name(cls, params: dict[str, Any]) -> str:
        return params["op"]

    @classmethod
    def skip_reason(cls, settings: Settings, params: dict[str, Any]) -> str | None:
        if settings.device == "gpu":
            reason = gpu_skip_reason(settings.device)
            if reason is None and params["op"].endswith("[kernel]"):
                try:
                    import cupy  # noqa: F401
                except ImportError:
                    return "the GPU kernel backend needs CuPy"
            return reason
        return None

    def setup(self) -> None:
        s = self.settings
        gen = torch.Generator().manual_seed(s.seed)
        nchw = torch.randn((self.b, 3, self.size, self.size), generator=gen)
        self.labels = torch.randint(0, s.num_classes, (self.b,), generator=gen).to(self.dev)
        if self.op in REFERENCES:
            self.x = nchw.to(self.dev)
            self.fn, self.label = build_reference(
                self.op,
                image_size=self.size,
                num_classes=s.num_classes,
                device=self.dev,
                seed=s.seed,
            )
            return
        nhwc = nchw.permute(0, 2, 3, 1).contiguous()
        self.aug = (
            None
            if self.aug_name == "passthrough"
            else our_augment(self.aug_name, self.impl, self.size)
        )
        if self.impl == "kernel":
            if self.dev.type == "cuda":
                import cupy

                self.xp, self.x = cupy, cupy.from_dlpack(nhwc.to(self.dev))
            else:
                self.xp, self.x = np, nhwc.numpy()
            self.rng = np.random.default_rng(s.seed)
            self.label = f"{type(self.aug).__name__}.sample + apply_xp ({self.xp.__name__})"
            return
        self.x = nhwc.to(self.dev)
        self.pipe = self._pipeline()
        self.label = "DALI pipeline: external_source (zero-copy)" + (
            f" → {type(self.aug).__name__}.apply_dali" if self.aug is not None else ""
        )

    def _pipeline(self) -> Any:
        from nvidia.dali import fn, pipeline_def

        from dali_gridaug.params import ParamSource

        s, gpu = self.settings, self.dev.type == "cuda"
        data: Any = self.x.numpy() if not gpu else self.x
        if gpu:
            try:  # DALI takes CUDA arrays through __cuda_array_interface__; CuPy when present
                import cupy

                data = cupy.from_dlpack(self.x)
            except ImportError:
                pass
        params = ParamSource(
            [self.aug] if self.aug is not None else [],
            batch_size=self.b,
            height=self.size,
            width=self.size,
            seed=s.seed,
            rank=0,
            steps_per_epoch=1,
        )
        aug, size = self.aug, self.size

        @pipeline_def(
            batch_size=self.b,
            num_threads=s.workers,
            seed=s.seed,
            exec_dynamic=True,
            device_id=torch.cuda.current_device() if gpu else None,
        )
        def graph() -> Any:
            images = fn.external_source(
                source=lambda: data,
                batch=True,
                no_copy=True,
                layout="HWC",
                device="gpu" if gpu else "cpu",
            )
            if aug is None:
                return images
            outs = fn.external_source(
                source=params, num_outputs=len(params.keys), batch=True, batch_info=True
            )
            nodes = dict(zip(params.keys, outs, strict=True))
            mine = {k.split(".", 1)[1]: v for k, v in nodes.items() if k.startswith("0.")}
            # the parameters are outputs too (as in the loader), so none is left unused
            return (aug.apply_dali(images, mine, size, size), *nodes.values())

        pipe = graph()
        pipe.build()
        return pipe

    def run(self) -> None:
        if self.op in REFERENCES:
            self.fn(self.x, self.labels)
        elif self.impl == "kernel":
            params = self.aug.sample(self.rng, self.b, self.size, self.size, 0)
            args = {k: self.xp.asarray(v) for k, v in params.items()}
            self.aug.apply_xp(self.xp, self.x, args)
        else:
            self.pipe.run()

    def teardown(self) -> None:
        self.pipe = self.x = self.fn = None

    def describe(self) -> dict[str, Any]:
        ours = self.op not in REFERENCES
        return {
            "family": "op-ours" if ours else "op-reference",
            "implementation": self.label,
            "augment": self.aug_name,
            "backend": self.impl if ours else None,
            "batch_size": self.b,
            "image_size": self.size,
            "threads": self.settings.workers if self.impl == "dali" else None,
            "device_used": self.dev.type,
        }
