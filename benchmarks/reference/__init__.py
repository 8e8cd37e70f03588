"""Reference implementations, as the papers' official code (or timm) applies each
augmentation in the training loop: on the loaded batch, on the training device.

:func:`build` returns ``fn(images, target)`` (NCHW float images on ``device``) and a label
naming what it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

#: reference name → one-line provenance.
REFERENCES: dict[str, str] = {
    "gridmask[official]": "official GridMask nn.Module: per-sample numpy mask + PIL rotate loop",
    "cutmix[clovaai]": "official clovaai CutMix: one λ, one box, one randperm per batch",
    "cutmix[timm]": "timm.data.Mixup, CutMix only, mode='batch'",
    "gridmix[torch]": "straightforward per-batch torch GridMix (no official code)",
}


def gridmask_d(image_size: int) -> tuple[int, int]:
    """GridMask's ImageNet period range ``[96, 224)`` scaled to ``image_size``."""
    return max(2, 96 * image_size // 224), max(3, image_size)


def build(
    name: str, *, image_size: int, num_classes: int, device: torch.device | str, seed: int = 0
) -> tuple[Callable[[torch.Tensor, torch.Tensor], Any], str]:
    """The reference ``name`` (a key of :data:`REFERENCES`) with the ImageNet settings the
    benchmark also gives our pipeline (apply probability 1)."""
    if name == "gridmask[official]":
        from benchmarks.reference.gridmask import GridMask

        d1, d2 = gridmask_d(image_size)
        module = GridMask(d1, d2, rotate=360, ratio=0.6, mode=1, prob=1.0, seed=seed).train()
        return lambda x, y: module(x), REFERENCES[name]
    if name == "cutmix[clovaai]":
        from benchmarks.reference.cutmix import cutmix_official

        rng = np.random.RandomState(seed)
        return lambda x, y: cutmix_official(x, y, beta=1.0, cutmix_prob=1.0, rng=rng), REFERENCES[
            name
        ]
    if name == "cutmix[timm]":
        from benchmarks.reference.cutmix import timm_cutmix

        fn, label = timm_cutmix(num_classes, seed)
        return fn, label
    if name == "gridmix[torch]":
        from benchmarks.reference.gridmix import gridmix_torch

        gen = torch.Generator(device=device).manual_seed(seed)
        return (
            lambda x, y: gridmix_torch(x, y, n=4, p=0.8, num_classes=num_classes, generator=gen),
            REFERENCES[name],
        )
    raise KeyError(f"unknown reference {name!r}; choose from {sorted(REFERENCES)}")
