"""Test oracles: the papers' official algorithms, written plainly (per sample, NumPy/PIL)."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image


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
    """The official GridMask mask (dvlab-research/GridMask ``Grid.__call__``): 1 = kept."""
    hh = math.ceil(math.sqrt(h * h + w * w))
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


def cutmix_official_lam(
    h: int, w: int, rng: np.random.Generator, alpha: float, n: int
) -> np.ndarray:
    """Corrected λ of the clovaai CutMix box rule, ``n`` draws."""
    lam = rng.beta(alpha, alpha, n)
    cut = np.sqrt(1 - lam)
    cw, ch = (w * cut).astype(int), (h * cut).astype(int)
    cx, cy = rng.integers(0, w, n), rng.integers(0, h, n)
    x1, x2 = np.clip(cx - cw // 2, 0, w), np.clip(cx + cw // 2, 0, w)
    y1, y2 = np.clip(cy - ch // 2, 0, h), np.clip(cy + ch // 2, 0, h)
    return 1 - (x2 - x1) * (y2 - y1) / (w * h)
