"""Reference implementations: the papers' official code, ported plainly, in one place.

They serve twice: the benchmarks time them as the "official" way to augment (on the loaded
batch, in the training loop, on the training device), and the tests use them as oracles for
the library's statistics. The official ports stay faithful and independent of the library's
own geometry (they are oracles).

* GridMask: dvlab-research/GridMask ``imagenet_grid/utils/grid.py`` (``Grid.__call__``: a
  per-sample numpy mask, two Python loops, a PIL rotation; ``GridMask.forward`` loops over
  the batch).
* CutMix: clovaai/CutMix-PyTorch ``train.py`` (``rand_bbox`` and the batch step) and, when
  installed, ``timm.data.Mixup`` set to CutMix only.
* GridMix: no official code exists; :func:`gridmix_torch` is a straightforward batched torch
  version (Bernoulli cells, one partner permutation, λ = fraction of kept cells) on the
  library's cell bounds (:func:`dali_gridaug.geometry.cell_bounds`).

Random draws use a :class:`numpy.random.Generator` (the official code uses numpy's global
state); the order of the draws is the official one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from dali_gridaug.geometry import cell_bounds

#: reference name → one-line provenance (the names the ``augment-op`` suite and plots use).
REFERENCES: dict[str, str] = {
    "gridmask[official]": "official GridMask nn.Module: per-sample numpy mask + PIL rotate loop",
    "cutmix[clovaai]": "official clovaai CutMix: one λ, one box, one randperm per batch",
    "cutmix[timm]": "timm.data.Mixup, CutMix only, mode='batch'",
    "gridmix[torch]": "straightforward per-batch torch GridMix (no official code)",
}


def gridmask_official(
    h: int,
    w: int,
    rng: np.random.Generator,
    *,
    r: float,
    d: tuple[int, int],
    rotate: int,
    mode: int,
) -> np.ndarray:
    """One official GridMask mask (``Grid.__call__`` without its apply coin).

    Args:
        h: image height in pixels.
        w: image width in pixels.
        rng: random generator (draws: period, two shifts, angle, in the official order).
        r: ratio: a line band is ``ceil(d·r)`` pixels wide.
        d: period range ``[d[0], d[1])`` in pixels.
        rotate: angles are drawn from ``[0, rotate)`` whole degrees.
        mode: 1 drops the squares where the bands cross (the official ``1 - mask``), 0 drops
            the bands.

    Returns:
        ``(h, w)`` float32 mask, 1 = pixel kept, 0 = dropped.
    """
    hh = math.ceil(math.sqrt(h * h + w * w))  # a square that covers any rotation of the image
    dd = int(rng.integers(d[0], d[1]))
    l = math.ceil(dd * r)  # noqa: E741
    mask = np.ones((hh, hh), np.float32)
    st_h, st_w = int(rng.integers(dd)), int(rng.integers(dd))
    for i in range(-1, hh // dd + 1):
        s, t = max(min(dd * i + st_h, hh), 0), max(min(dd * i + st_h + l, hh), 0)
        mask[s:t, :] *= 0
    for i in range(-1, hh // dd + 1):
        s, t = max(min(dd * i + st_w, hh), 0), max(min(dd * i + st_w + l, hh), 0)
        mask[:, s:t] *= 0
    angle = int(rng.integers(rotate))
    mask = np.asarray(Image.fromarray(np.uint8(mask)).rotate(angle))
    mask = mask[(hh - h) // 2 : (hh - h) // 2 + h, (hh - w) // 2 : (hh - w) // 2 + w]
    return (1 - mask if mode == 1 else mask).astype(np.float32)


class GridMaskOfficial(nn.Module):
    """The official ``GridMask`` module: per sample, a coin, a numpy mask, a device copy.

    Args:
        d: period range ``[d[0], d[1])`` in pixels.
        r: band ratio (see :func:`gridmask_official`).
        rotate: angle range in whole degrees.
        mode: 1 drops squares, 0 drops bands.
        prob: per-sample apply probability.
        seed: seed of the module's generator.
    """

    def __init__(
        self, d: tuple[int, int], r: float, rotate: int, mode: int, prob: float, seed: int = 0
    ) -> None:
        super().__init__()
        self.d, self.r, self.rotate, self.mode, self.prob = d, r, rotate, mode, prob
        self.rng = np.random.default_rng(seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mask an ``(N, C, H, W)`` float batch sample by sample (as the official loop does)."""
        if not self.training:
            return x
        n, c, h, w = x.shape
        out = []
        for i in range(n):
            if self.rng.random() > self.prob:
                out.append(x[i])
                continue
            m = gridmask_official(
                h, w, self.rng, r=self.r, d=self.d, rotate=self.rotate, mode=self.mode
            )
            out.append(x[i] * torch.from_numpy(m).to(x.device).expand_as(x[i]))
        return torch.stack(out)


def rand_bbox(
    w: int, h: int, lam: Any, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The clovaai ``rand_bbox``: a box of side ``√(1−λ)`` of the image, centre uniform,
    clipped at the borders (``cut // 2`` on each side of the centre).

    Args:
        w: image width (clovaai's ``W``, NCHW dim 2 in its code).
        h: image height.
        lam: λ, a float or an array (one box per element).
        rng: random generator (draws the centre's x, then y).

    Returns:
        ``(x1, y1, x2, y2)`` integer arrays shaped like ``lam``.
    """
    lam = np.asarray(lam, np.float64)
    cut = np.sqrt(1.0 - lam)
    cw, ch = (w * cut).astype(int), (h * cut).astype(int)
    cx, cy = rng.integers(0, w, lam.shape), rng.integers(0, h, lam.shape)
    x1, x2 = np.clip(cx - cw // 2, 0, w), np.clip(cx + cw // 2, 0, w)
    y1, y2 = np.clip(cy - ch // 2, 0, h), np.clip(cy + ch // 2, 0, h)
    return x1, y1, x2, y2


def cutmix_official_lam(
    h: int, w: int, rng: np.random.Generator, alpha: float, n: int
) -> np.ndarray:
    """``n`` corrected λ of clovaai's CutMix: ``1 − box area / image area`` after clipping."""
    x1, y1, x2, y2 = rand_bbox(w, h, rng.beta(alpha, alpha, n), rng)
    return 1 - (x2 - x1) * (y2 - y1) / (w * h)


def cutmix_official(
    x: torch.Tensor, target: torch.Tensor, *, beta: float, prob: float, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """One clovaai CutMix step on an ``(N, C, H, W)`` batch, in place.

    Returns:
        ``(x, target_a, target_b, lam)``: the loss is ``λ·CE(target_a) + (1−λ)·CE(target_b)``.
    """
    if not (beta > 0 and rng.random() < prob):
        return x, target, target, 1.0
    lam = rng.beta(beta, beta)
    perm = torch.randperm(x.shape[0], device=x.device)
    x1, y1, x2, y2 = (int(v) for v in rand_bbox(x.shape[2], x.shape[3], lam, rng))
    x[:, :, x1:x2, y1:y2] = x[perm, :, x1:x2, y1:y2]
    lam = 1 - (x2 - x1) * (y2 - y1) / (x.shape[-1] * x.shape[-2])
    return x, target, target[perm], float(lam)


def gridmix_torch(
    x: torch.Tensor,
    target: torch.Tensor,
    *,
    n: int,
    p: float,
    num_classes: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """GridMix on an ``(B, C, H, W)`` batch: an ``n×n`` grid of Bernoulli(p) cells (True keeps
    the image, False takes the partner's), cell ``i`` spanning rows ``[⌊i·H/n⌋, ⌊(i+1)·H/n⌋)``
    (:func:`~dali_gridaug.geometry.cell_bounds`).

    Returns:
        ``(images, soft_target (B, K) float32, patch_labels (B, n, n) int64)``.
    """
    b, _, h, w = x.shape
    dev = x.device
    cells = torch.rand((b, n, n), generator=generator, device=dev) < p
    perm = torch.randperm(b, generator=generator, device=dev)

    def cell_of(size: int) -> torch.Tensor:  # the cell index of each row (column)
        edges = torch.as_tensor(cell_bounds(size, n)[1:-1], device=dev)
        return torch.bucketize(torch.arange(size, device=dev), edges, right=True)

    keep = cells[:, cell_of(h)[:, None], cell_of(w)[None, :]]
    out = torch.where(keep[:, None], x, x[perm])
    lam = cells.flatten(1).float().mean(1, keepdim=True)
    onehot = torch.nn.functional.one_hot(target, num_classes).float()
    soft = lam * onehot + (1 - lam) * onehot[perm]
    patch = torch.where(cells, target[:, None, None], target[perm][:, None, None])
    return out, soft, patch


def gridmask_d(image_size: int) -> tuple[int, int]:
    """GridMask's ImageNet period range ``[96, 224)`` scaled to ``image_size`` pixels."""
    return max(2, 96 * image_size // 224), max(3, image_size)


def build(
    name: str, *, image_size: int, num_classes: int, device: torch.device, seed: int = 0
) -> Callable[[torch.Tensor, torch.Tensor], Any]:
    """The reference ``name`` (a key of :data:`REFERENCES`) as ``fn(images, labels)`` with the
    ImageNet settings the benchmark gives the library too (apply probability 1).

    Raises:
        ImportError: ``cutmix[timm]`` without timm installed.
    """
    rng = np.random.default_rng(seed)
    if name == "gridmask[official]":
        module = GridMaskOfficial(gridmask_d(image_size), r=0.6, rotate=360, mode=1, prob=1.0)
        module.rng = rng
        return lambda x, y: module(x)
    if name == "cutmix[clovaai]":
        return lambda x, y: cutmix_official(x, y, beta=1.0, prob=1.0, rng=rng)
    if name == "cutmix[timm]":
        from timm.data import Mixup

        np.random.seed(seed)  # timm draws from numpy's global state
        return Mixup(
            mixup_alpha=0.0,
            cutmix_alpha=1.0,
            prob=1.0,
            switch_prob=0.0,
            mode="batch",
            label_smoothing=0.0,
            num_classes=num_classes,
        )
    if name == "gridmix[torch]":
        gen = torch.Generator(device=device).manual_seed(seed)
        return lambda x, y: gridmix_torch(x, y, n=4, p=0.8, num_classes=num_classes, generator=gen)
    raise KeyError(f"unknown reference {name!r}; choose from {sorted(REFERENCES)}")
