"""Reference CutMix implementations applied to a loaded batch on the training device.

* :func:`cutmix_official`: the official clovaai ``train.py`` step, written from its
  description: one coin, one λ ~ Beta(β, β), one ``rand_bbox`` and one ``randperm`` per batch,
  ``input[:, :, bbx1:bbx2, bby1:bby2] = input[rand_index, :, bbx1:bbx2, bby1:bby2]``, λ
  recomputed from the clipped box; the loss mixes ``target_a`` and ``target_b`` with λ.
* :func:`timm_cutmix`: ``timm.data.Mixup`` configured for CutMix only (batch mode), when timm
  is installed; otherwise :class:`TimmStyleCutMix`, a labelled reimplementation of the same
  steps (flipped-batch partner, ``(cut+1)//2`` box, one-hot mixed target).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch


def rand_bbox(size: torch.Size, lam: float, rng: np.random.RandomState) -> tuple[int, ...]:
    """clovaai's ``rand_bbox`` (its ``W``/``H`` are dims 2 and 3 of NCHW)."""
    w, h = size[2], size[3]
    cut_rat = np.sqrt(1.0 - lam)
    cut_w, cut_h = int(w * cut_rat), int(h * cut_rat)
    cx, cy = rng.randint(w), rng.randint(h)
    bbx1 = int(np.clip(cx - cut_w // 2, 0, w))
    bby1 = int(np.clip(cy - cut_h // 2, 0, h))
    bbx2 = int(np.clip(cx + cut_w // 2, 0, w))
    bby2 = int(np.clip(cy + cut_h // 2, 0, h))
    return bbx1, bby1, bbx2, bby2


def cutmix_official(
    inputs: torch.Tensor,
    target: torch.Tensor,
    *,
    beta: float = 1.0,
    cutmix_prob: float = 1.0,
    rng: np.random.RandomState,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """One clovaai CutMix step (in place on ``inputs``).

    Returns:
        ``(inputs, target_a, target_b, lam)`` as the training loop uses them.
    """
    r = rng.rand(1)
    if beta > 0 and r < cutmix_prob:
        lam = rng.beta(beta, beta)
        rand_index = torch.randperm(inputs.size()[0], device=inputs.device)
        target_a, target_b = target, target[rand_index]
        bbx1, bby1, bbx2, bby2 = rand_bbox(inputs.size(), lam, rng)
        inputs[:, :, bbx1:bbx2, bby1:bby2] = inputs[rand_index, :, bbx1:bbx2, bby1:bby2]
        lam = 1 - ((bbx2 - bbx1) * (bby2 - bby1) / (inputs.size()[-1] * inputs.size()[-2]))
        return inputs, target_a, target_b, float(lam)
    return inputs, target, target, 1.0


class TimmStyleCutMix:
    """REIMPLEMENTATION (used only when timm is not installed) of ``timm.data.Mixup`` with
    ``mixup_alpha=0, cutmix_alpha=α, mode="batch"``: same steps, not timm's code."""

    def __init__(self, alpha: float = 1.0, num_classes: int = 1000, seed: int = 0) -> None:
        self.alpha, self.num_classes = alpha, num_classes
        self.rng = np.random.RandomState(seed)

    def __call__(self, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lam = float(self.rng.beta(self.alpha, self.alpha))
        h, w = x.shape[-2:]
        ratio = np.sqrt(1 - lam)
        ch, cw = int(h * ratio), int(w * ratio)
        cy, cx = self.rng.randint(0, h), self.rng.randint(0, w)
        yl, yh = np.clip(cy - ch // 2, 0, h), np.clip(cy + (ch + 1) // 2, 0, h)
        xl, xh = np.clip(cx - cw // 2, 0, w), np.clip(cx + (cw + 1) // 2, 0, w)
        x[:, :, yl:yh, xl:xh] = x.flip(0)[:, :, yl:yh, xl:xh]
        lam = 1.0 - (yh - yl) * (xh - xl) / float(h * w)
        y1 = torch.nn.functional.one_hot(target, self.num_classes).to(x.dtype)
        return x, y1 * lam + y1.flip(0) * (1.0 - lam)


def timm_cutmix(num_classes: int, seed: int = 0) -> tuple[Callable[..., Any], str]:
    """timm's ``Mixup`` set to CutMix only, or the labelled fallback; returns ``(fn, label)``."""
    try:
        import timm
        from timm.data import Mixup
    except ImportError:
        return TimmStyleCutMix(1.0, num_classes, seed), "reimplementation of timm Mixup (no timm)"
    np.random.seed(seed)  # timm draws from the global numpy RNG
    mix = Mixup(
        mixup_alpha=0.0,
        cutmix_alpha=1.0,
        prob=1.0,
        switch_prob=0.0,
        mode="batch",
        correct_lam=True,
        label_smoothing=0.0,
        num_classes=num_classes,
    )
    return mix, f"timm {timm.__version__} timm.data.Mixup(cutmix_alpha=1, mode='batch')"
