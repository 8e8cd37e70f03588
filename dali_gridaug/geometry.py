"""Shared geometry of the augmentations: one definition per rule, used by the augmentations,
the Keep stage, the tests' oracles and the benchmarks.

Conventions: pixel coordinates are integers, ``y`` down and ``x`` right, from the top-left
pixel ``(0, 0)``; boxes are half-open ``(y0, x0, y1, x1)`` (rows ``y0 … y1−1``), clipped to the
image unless stated. All functions are pure NumPy with a leading batch dimension; the box
functions taking coordinates use only ``+ − // .clip`` and so also accept torch tensors.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

Array = Any  # numpy array (or torch tensor where a docstring says so)


# --- CutMix / Cutout boxes -------------------------------------------------------------------


def cut_sides(lam: Array, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """CutMix box sides for mixing weights ``lam``: ``int(S·sqrt(1 − λ))`` per axis.

    Args:
        lam: ``(N,)`` λ in [0, 1] (share of the image kept).
        height: image height H in pixels.
        width: image width W in pixels.

    Returns:
        ``(side_h, side_w)``, each ``(N,)`` int64 pixels (official clovaai code).
    """
    cut = np.sqrt(1.0 - np.asarray(lam, np.float64))
    return (height * cut).astype(np.int64), (width * cut).astype(np.int64)


def centred_box(
    cy: Array, cx: Array, side_h: Array, side_w: Array, height: int, width: int
) -> tuple[Array, Array, Array, Array]:
    """The clip rule (official CutMix and Cutout code): ``[c − s//2, c + s//2)`` per axis,
    clipped to the image, so a box near a border is smaller than ``s``.

    Args:
        cy: ``(N,)`` integer centre rows (uniform over ``0 … H−1`` in CutMix/Cutout).
        cx: ``(N,)`` integer centre columns.
        side_h: ``(N,)`` or scalar box height in pixels.
        side_w: ``(N,)`` or scalar box width in pixels.
        height: image height H.
        width: image width W.

    Returns:
        ``(y0, x0, y1, x1)``, each ``(N,)`` of the input's integer type (numpy or torch).
    """
    return (
        (cy - side_h // 2).clip(0, height),
        (cx - side_w // 2).clip(0, width),
        (cy + side_h // 2).clip(0, height),
        (cx + side_w // 2).clip(0, width),
    )


def sample_box(
    rng: np.random.Generator, side_h: Array, side_w: Array, height: int, width: int, rule: str
) -> np.ndarray:
    """Place boxes of the given sides with the ``"clip"`` or ``"inside"`` rule.

    ``"clip"``: centre uniform over all ``H·W`` pixels, :func:`centred_box` (the official
    CutMix/Cutout rule: the mean area is smaller than ``side_h·side_w``). ``"inside"``: the top
    left corner uniform over the positions where the whole box fits (``side ≤ image side``).

    Args:
        rng: the generator (the only randomness).
        side_h: ``(N,)`` int box heights.
        side_w: ``(N,)`` int box widths.
        height: image height H.
        width: image width W.
        rule: ``"clip"`` or ``"inside"``.

    Returns:
        ``(N, 4)`` int64 boxes ``(y0, x0, y1, x1)``.
    """
    side_h, side_w = np.asarray(side_h, np.int64), np.asarray(side_w, np.int64)
    n = side_h.shape[0]
    if rule == "clip":
        cy, cx = rng.integers(0, height, n), rng.integers(0, width, n)
        return np.stack(centred_box(cy, cx, side_h, side_w, height, width), axis=1)
    if rule == "inside":
        y0 = rng.integers(0, height - np.minimum(side_h, height) + 1)
        x0 = rng.integers(0, width - np.minimum(side_w, width) + 1)
        return np.stack([y0, x0, y0 + side_h, x0 + side_w], axis=1).clip(0, [height, width] * 2)
    raise ValueError(f"`rule` must be 'clip' or 'inside', got {rule!r}")


def sample_timm_box(
    rng: np.random.Generator,
    lam: Array,
    height: int,
    width: int,
    minmax: tuple[float, float] | None = None,
) -> np.ndarray:
    """The CutMix boxes of timm (``timm/data/mixup.py``), beside the clovaai rule above.

    Without ``minmax``, ``rand_bbox``: sides :func:`cut_sides` of ``lam``, centre uniform over
    all H·W pixels, box ``[c − s//2, c + (s+1)//2)`` clipped to the image (the clovaai rule
    of :func:`centred_box` ends at ``c + s//2``). With ``minmax = (a, b)``,
    ``rand_bbox_minmax``: sides uniform in ``int(S·a) … int(S·b) − 1`` per axis, the top left
    corner uniform over the positions where the whole box fits.

    Args:
        rng: the generator; draws, in order, the centre rows and columns (with ``minmax``:
            the heights, widths, top rows and left columns).
        lam: ``(N,)`` λ in [0, 1] (share of the image kept; unused with ``minmax``).
        height: image height H in pixels.
        width: image width W in pixels.
        minmax: ``(a, b)`` box side range as fractions of the image side, or None.

    Returns:
        ``(N, 4)`` int64 boxes ``(y0, x0, y1, x1)``.
    """
    n = np.shape(lam)[0]
    if minmax is None:
        ch, cw = cut_sides(lam, height, width)
        cy, cx = rng.integers(0, height, n), rng.integers(0, width, n)
        y0, y1 = np.clip(cy - ch // 2, 0, height), np.clip(cy + (ch + 1) // 2, 0, height)
        x0, x1 = np.clip(cx - cw // 2, 0, width), np.clip(cx + (cw + 1) // 2, 0, width)
    else:
        ch = rng.integers(int(height * minmax[0]), int(height * minmax[1]), n)
        cw = rng.integers(int(width * minmax[0]), int(width * minmax[1]), n)
        y0, x0 = rng.integers(0, height - ch + 1), rng.integers(0, width - cw + 1)
        y1, x1 = y0 + ch, x0 + cw
    return np.stack([y0, x0, y1, x1], axis=1).astype(np.int64)


def box_area(boxes: Array) -> Array:
    """``(N,)`` pixel areas of ``(N, 4)`` boxes (0 for empty ones; numpy or torch)."""
    return (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)


def mirror_boxes(boxes: np.ndarray, width: int, flip: np.ndarray | None) -> np.ndarray:
    """Boxes after a horizontal flip ``x → W − 1 − x`` of the samples where ``flip`` is 1.

    Args:
        boxes: ``(N, 4)`` or ``(N, k, 4)`` int boxes ``(y0, x0, y1, x1)``.
        width: image width W.
        flip: ``(N,)`` 0/1 coins, or None (no flip).

    Returns:
        Boxes of the same shape and dtype; ``[x0, x1)`` becomes ``[W − x1, W − x0)``.
    """
    if flip is None:
        return boxes
    f = np.asarray(flip, bool).reshape((-1,) + (1,) * (boxes.ndim - 2))
    out = boxes.copy()
    out[..., 1] = np.where(f, width - boxes[..., 3], boxes[..., 1])
    out[..., 3] = np.where(f, width - boxes[..., 1], boxes[..., 3])
    return out


# --- GridMask ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GridParams:
    """Per-sample GridMask grids, in the units of DALI's ``fn.grid_mask``.

    Attributes:
        tile: ``(N,)`` int32 period ``d`` in pixels.
        ratio: ``(N,)`` float32 dropped fraction of the period per axis, ``(d − l) / d``
            with the kept stripe ``l = ceil(d·r)`` (float64 as the official code:
            d=100, r=0.6 gives l=60, where float32 would give 61).
        degrees: ``(N,)`` int64 rotation in whole degrees.
        shift_x: ``(N,)`` float32 integer grid offset in pixels, uniform in ``{0 … d−1}``.
        shift_y: ``(N,)`` float32 likewise along y.
    """

    tile: np.ndarray
    ratio: np.ndarray
    degrees: np.ndarray
    shift_x: np.ndarray
    shift_y: np.ndarray

    @property
    def angle(self) -> np.ndarray:
        """``(N,)`` float32 rotation in radians."""
        return (self.degrees.astype(np.float64) * (np.pi / 180)).astype(np.float32)


def grid_stripe(d: Array, r: float) -> np.ndarray:
    """Kept-stripe width ``l = ceil(d·r)`` (int64 pixels) of periods ``d``."""
    return np.ceil(np.asarray(d, np.float64) * r).astype(np.int64)


def sample_grid(
    rng: np.random.Generator, n: int, r: float, d: tuple[int, int], rotate: int
) -> GridParams:
    """Draw ``n`` GridMask grids (official code: ``d ~ U{d_min … d_max−1}``,
    ``l = ceil(d·r)``, angle ``~ U{0 … rotate−1}`` degrees, offsets ``~ U{0 … d−1}``).

    Args:
        rng: the generator; draws, in order, d, angle, shift_x, shift_y.
        n: number of grids.
        r: kept-stripe fraction in (0, 1].
        d: ``(d_min, d_max)`` period range, d_max exclusive.
        rotate: number of whole-degree angles (1 = no rotation).
    """
    tile = rng.integers(d[0], d[1], size=n)
    degrees = rng.integers(0, rotate, size=n)
    return GridParams(
        tile=tile.astype(np.int32),
        ratio=((tile - grid_stripe(tile, r)) / tile).astype(np.float32),
        degrees=degrees.astype(np.int64),
        shift_x=rng.integers(0, tile).astype(np.float32),
        shift_y=rng.integers(0, tile).astype(np.float32),
    )


# --- partners and GridMix cells --------------------------------------------------------------


def random_partner(rng: np.random.Generator, batch_size: int, derangement: bool) -> np.ndarray:
    """``(B,)`` int32 random permutation of ``range(B)``; without fixed points if
    ``derangement`` (a uniformly random cyclic shift of a random order).
    """
    perm = rng.permutation(batch_size)
    if not derangement:
        return perm.astype(np.int32)
    out = np.empty(batch_size, np.int64)
    out[perm] = np.roll(perm, -int(rng.integers(1, batch_size)))
    return out.astype(np.int32)


def identity_partner(batch_size: int) -> np.ndarray:
    """``(B,)`` int32 ``[0, 1, …, B−1]`` (every sample its own partner)."""
    return np.arange(batch_size, dtype=np.int32)


def cell_bounds(size: int, n: int) -> np.ndarray:
    """GridMix cell boundaries along one axis: ``(n+1,)`` int64 ``floor(i·size/n)``; cell
    ``i`` covers ``[bounds[i], bounds[i+1])``.
    """
    return (np.arange(n + 1, dtype=np.int64) * size) // n


def cell_boxes(height: int, width: int, n: int) -> np.ndarray:
    """``(n·n, 4)`` int64 boxes of the GridMix cells in row-major order."""
    ys, xs = cell_bounds(height, n), cell_bounds(width, n)
    y0, x0 = np.meshgrid(ys[:-1], xs[:-1], indexing="ij")
    y1, x1 = np.meshgrid(ys[1:], xs[1:], indexing="ij")
    return np.stack([y0, x0, y1, x1], -1).reshape(n * n, 4)
