"""``augment-op``: one augmentation applied to one batch of ``op_batch`` images already on the
device, the references (torch, NCHW) against ours.

Ours: ``[kernel]`` samples the batch's parameters and runs the array kernel (NumPy on the
CPU, CuPy on the GPU); ``[dali]`` and the default (``gridmask``: the backend ``auto``
picks) run a minimal DALI pipeline (``external_source`` of the resident images as uint8
pixels → the library's augmentation graph, which normalizes to CHW float on the way);
``passthrough[dali]`` is that pipeline with the normalization alone (its baseline).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from dali_gridaug.augment.base import SampleContext
from dali_gridaug.bench.reference import REFERENCES, build
from dali_gridaug.bench.registry import Benchmark, Settings, suite
from dali_gridaug.bench.suites.loaders import gpu_skip, our_augment
from dali_gridaug.constants import IMAGENET_MEAN, IMAGENET_STD

OPS: dict[str, tuple[str, str]] = {
    "gridmask[official]": ("gridmask", "official"),
    "gridmask": ("gridmask", "auto"),
    "gridmask[dali]": ("gridmask", "dali"),
    "gridmask[kernel]": ("gridmask", "kernel"),
    "cutmix[clovaai]": ("cutmix", "clovaai"),
    "cutmix[timm]": ("cutmix", "timm"),
    "cutmix[dali]": ("cutmix", "dali"),
    "cutmix[kernel]": ("cutmix", "kernel"),
    "gridmix[torch]": ("gridmix", "torch"),
    "gridmix[dali]": ("gridmix", "dali"),
    "gridmix[kernel]": ("gridmix", "kernel"),
    "passthrough[dali]": ("passthrough", "dali"),
}


@suite("augment-op", lambda s: {name: {"op": name} for name in OPS}, baseline="passthrough[dali]")
class AugmentOp(Benchmark):
    """One augmentation on one resident batch per run."""

    def __init__(self, settings: Settings, op: str) -> None:
        super().__init__(settings)
        self.op, (self.aug_name, self.impl) = op, OPS[op]
        self.b, self.size = settings.op_batch, settings.image_size
        self.images_per_run = self.b
        self.dev = torch.device("cuda" if settings.device == "gpu" else "cpu")

    @classmethod
    def skip_reason(cls, settings: Settings, params: dict[str, Any]) -> str | None:
        needs = {"cutmix[timm]": "timm"}
        if settings.device == "gpu":
            needs.update({k: "cupy" for k in OPS if k.endswith("[kernel]")})
            if gpu_skip(settings):
                return gpu_skip(settings)
        module = needs.get(params["op"])
        try:
            module and __import__(module)
        except ImportError:
            return f"{module} is not installed"
        return None

    def setup(self) -> None:
        s = self.settings
        gen = torch.Generator().manual_seed(s.seed)
        nchw = torch.randn((self.b, 3, self.size, self.size), generator=gen)
        self.labels = torch.randint(0, s.num_classes, (self.b,), generator=gen).to(self.dev)
        if self.op in REFERENCES:
            self.x = nchw.to(self.dev)
            self.fn = build(
                self.op,
                image_size=self.size,
                num_classes=s.num_classes,
                device=self.dev,
                seed=s.seed,
            )
            return
        nhwc = nchw.permute(0, 2, 3, 1).contiguous().to(self.dev)
        self.aug = None
        if self.aug_name != "passthrough":
            self.aug = our_augment(self.aug_name, self.impl, self.size)
        if self.impl == "kernel":
            self.xp, self.x = np, nhwc.numpy()
            if self.dev.type == "cuda":
                import cupy

                self.xp, self.x = cupy, cupy.from_dlpack(nhwc)
            self.rng = np.random.default_rng(s.seed)
        else:
            self.pipe = self._pipeline(nhwc)

    def _pipeline(self, nhwc: torch.Tensor) -> Any:
        """DALI pipeline: the resident batch as uint8 HWC pixels → the library's augmentation
        graph (:func:`~dali_gridaug.augment.graph.augment_graph`: paste, normalize to CHW,
        mask multiply), or the normalization alone for ``passthrough``.
        """
        from nvidia.dali import fn, pipeline_def

        from dali_gridaug.augment.graph import augment_graph
        from dali_gridaug.decode import normalize
        from dali_gridaug.params import ParamSource

        s, gpu, aug, size = self.settings, self.dev.type == "cuda", self.aug, self.size
        dev = "gpu" if gpu else "cpu"
        pixels = (nhwc.clamp(-2, 2) * 60 + 128).to(torch.uint8)
        data: Any = pixels if gpu else pixels.cpu().numpy()
        spec = SimpleNamespace(
            augments=(aug,),
            size=(size, size),
            device=dev,
            half=False,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
        )
        params = ParamSource(
            [aug] if aug else [],
            batch_size=self.b,
            height=size,
            width=size,
            seed=s.seed,
            rank=0,
        )

        @pipeline_def(
            batch_size=self.b,
            num_threads=s.workers,
            seed=s.seed,
            exec_dynamic=True,
            device_id=torch.cuda.current_device() if gpu else None,
        )
        def graph() -> Any:
            images = fn.external_source(
                source=lambda: data, batch=True, no_copy=True, layout="HWC", device=dev
            )
            nodes = params.standalone()
            if aug is None:  # every parameter an output, so none is left unused
                x = normalize(
                    images,
                    mean=spec.mean,
                    std=spec.std,
                    mirror=nodes.flip,
                    crop=None,
                    layout="CHW",
                    half=False,
                )
                return (x, *nodes.all.values())
            out = augment_graph(images, nodes, nodes.flip, spec.mean, spec)
            return (out, *params.outputs(nodes, dev).values())

        pipe = graph()
        pipe.build()
        return pipe

    def run(self) -> None:
        if self.op in REFERENCES:
            self.fn(self.x, self.labels)
        elif self.impl == "kernel":
            params = self.aug.sample(self.rng, SampleContext(self.b, self.size, self.size))
            self.aug.apply_xp(self.xp, self.x, {k: self.xp.asarray(v) for k, v in params.items()})
        else:
            self.pipe.run()

    def teardown(self) -> None:
        self.pipe = self.x = self.fn = None

    def describe(self) -> dict[str, Any]:
        if self.op in REFERENCES:
            impl = REFERENCES[self.op]
        elif self.impl == "kernel":
            impl = f"{type(self.aug).__name__}.sample + apply_xp ({self.xp.__name__})"
        else:
            op = f" + {type(self.aug).__name__} (augment_graph)" if self.aug else ""
            impl = f"DALI pipeline: external_source (zero-copy) → normalize{op}"
        return {"implementation": impl, "batch_size": self.b, "device_used": self.dev.type}
