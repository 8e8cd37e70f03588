"""``keep-stage``: the Keep stage's cost relative to a plain training step (KeepAugment §3.1).

One run is one torchvision ResNet-18 training step (forward, backward, SGD) on a resident
batch of ``batch_size`` random images at ``image_size``: plain, with the early head's
auxiliary loss, preceded by the Keep stage (KeepCutout with full, low-resolution and
early-head saliency; KeepCutMix, KeepGridMask and selective paste with full saliency), and
the region selection alone on a precomputed saliency map. The paper's CIFAR-10 ResNet-18
seconds per epoch (Cutout 19, KeepCutout 38, low-resolution 24, early head 23) give the
reference ratios 2.0, 1.26 and 1.21 (recorded as ``paper_relative``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from dali_gridaug.bench.registry import Benchmark, Settings, suite
from dali_gridaug.bench.suites.loaders import gpu_skip

#: config → (Keep method or None, saliency, early head, what is timed, paper's ratio)
CONFIGS: dict[str, tuple[str | None, str, bool, str, float | None]] = {
    "plain": (None, "full", False, "step", None),
    "plain-early-head": (None, "full", True, "step", None),
    "keep-cutout-full": ("cutout", "full", False, "step", round(38 / 19, 2)),
    "keep-cutout-lowres": ("cutout", "lowres", False, "step", round(24 / 19, 2)),
    "keep-cutout-early": ("cutout", "early", True, "step", round(23 / 19, 2)),
    "keep-cutmix-full": ("cutmix", "full", False, "step", None),
    "keep-gridmask-full": ("gridmask", "full", False, "step", None),
    "keep-paste-full": ("paste", "full", False, "step", None),
    "regions-only": (None, "full", False, "regions", None),
}


@suite("keep-stage", lambda s: {name: {"config": name} for name in CONFIGS}, baseline="plain")
class KeepStep(Benchmark):
    """One ResNet-18 training step per run, optionally after the Keep stage."""

    def __init__(self, settings: Settings, config: str) -> None:
        super().__init__(settings)
        self.config = config
        self.method, self.saliency, self.early, self.what, self.paper = CONFIGS[config]
        self.images_per_run = settings.batch_size
        self.dev = torch.device("cuda" if settings.device == "gpu" else "cpu")
        self.length = max(1, settings.image_size // 2)

    @classmethod
    def skip_reason(cls, settings: Settings, params: dict[str, Any]) -> str | None:
        return gpu_skip(settings) if settings.device == "gpu" else None

    def setup(self) -> None:
        from torchvision.models import resnet18

        from dali_gridaug.batch import Batch
        from dali_gridaug.models.heads import EarlyHeadResNet
        from dali_gridaug.saliency import KeepStage

        s, dev = self.settings, self.dev
        torch.manual_seed(s.seed)
        model = resnet18(num_classes=s.num_classes)
        self.model = (EarlyHeadResNet(model) if self.early else model).to(dev).train()
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        self.gen = gen = torch.Generator(device=dev).manual_seed(s.seed)
        b, size = s.batch_size, s.image_size
        images = torch.randn(b, 3, size, size, generator=gen, device=dev)
        labels = torch.randint(0, s.num_classes, (b,), generator=gen, device=dev)
        clean = torch.randn(b, 3, size, size, generator=gen, device=dev)
        self.batch = Batch(
            images=images,
            target=labels,
            labels=labels,
            index=torch.arange(b, device=dev),
            lam=torch.ones(b, device=dev),
            partner=torch.arange(b, device=dev),
            clean=clean if self.method == "paste" else None,
        )
        self.stage = None
        if self.method is not None:
            self.stage = KeepStage(
                self.model, self.method, length=self.length, saliency=self.saliency, seed=s.seed
            )
        self.saliency_map = torch.rand(b, size, size, generator=gen, device=dev)
        self.keys = torch.arange(b, device=dev)

    def run(self) -> None:
        from dali_gridaug.loss import early_head_loss
        from dali_gridaug.saliency.regions import select_windows

        if self.what == "regions":
            select_windows(
                self.saliency_map,
                self.length,
                self.length,
                tau=0.6,
                which="cut",
                keys=self.keys,
            )
            return
        batch = self.stage(self.batch) if self.stage is not None else self.batch
        target = batch.target
        if target.ndim == 1:
            target = F.one_hot(target, self.settings.num_classes).float()
        out = self.model(batch.images)
        if self.early:
            logits, early_logits = out
            loss = early_head_loss(F.cross_entropy(logits, target), early_logits, target)
        else:
            loss = F.cross_entropy(out, target)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def teardown(self) -> None:
        self.model = self.opt = self.stage = self.batch = None

    def describe(self) -> dict[str, Any]:
        impl = (
            "dali_gridaug.saliency.regions.select_windows on a precomputed (B, H, W) map"
            if self.what == "regions"
            else "torchvision resnet18 SGD step" + (" after KeepStage" if self.method else "")
        )
        return {
            "implementation": impl,
            "method": self.method,
            "saliency": self.saliency,
            "window": self.length,
            "paper_relative": self.paper,
            "torch_threads": torch.get_num_threads(),
        }
