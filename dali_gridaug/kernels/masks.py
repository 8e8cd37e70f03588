"""Binary visibility masks for a batch: 1 where the pixel stays (the image's own pixel), 0
where it is dropped or replaced.

All functions take per-sample parameters as 1-D arrays with a leading batch dimension ``B``
and return a ``(B, H, W)`` float32 mask on the same device as the parameters. ``xp`` is the
parameters' array module: numpy, cupy (the graph's ``python_function`` path) or torch (the Keep
stage, on torch tensors of any device: its factory functions such as ``arange`` follow the
default device, so call them under ``with device:``). The functions use only what all three
share (``asarray`` with ``dtype``, ``arange``, ``floor``, ``searchsorted``, advanced indexing).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

Array = Any


def grid_visible_mask(
    xp: ModuleType,
    height: int,
    width: int,
    tile: Array,
    ratio: Array,
    angle: Array,
    shift_x: Array,
    shift_y: Array,
    *,
    mode: int = 1,
    square_visible: Array | None = None,
) -> Array:
    """GridMask visibility mask with the geometry of DALI's ``fn.grid_mask``.

    In the grid frame ``fx = (x·cos a − y·sin a − shift_x) / tile`` and
    ``fy = (x·sin a + y·cos a − shift_y) / tile``; a pixel lies in a dropped square iff
    ``frac(fx) < ratio`` and ``frac(fy) < ratio``. So squares of side ``ratio·tile`` (pixels)
    are dropped and stripes of width ``(1 − ratio)·tile`` kept. A uniform shift in
    ``[0, tile)`` makes the mask stationary for any angle.

    Args:
        xp: numpy, cupy or torch.
        height: image height H in pixels.
        width: image width W in pixels.
        tile: ``(B,)`` grid period ``d`` in pixels.
        ratio: ``(B,)`` dropped fraction of the period per axis, ``(d − l) / d``; 0 = identity.
        angle: ``(B,)`` rotation in radians (about pixel (0, 0), as DALI).
        shift_x: ``(B,)`` grid offset in pixels along the rotated x axis.
        shift_y: ``(B,)`` grid offset in pixels along the rotated y axis.
        mode: 1 = GridMask (drop squares), 0 = reversed (keep only the squares): exactly
            ``1 − mask(mode=1)``.
        square_visible: optional ``(B, S, S)`` 0/1 array for random GridMask: square
            ``(iy mod S, ix mod S)`` is dropped only where it is 0 (1 = it stays visible;
            S ≥ number of squares per axis keeps squares independent).

    Returns:
        ``(B, H, W)`` float32 visibility mask.
    """
    f32 = xp.float32
    tile = xp.asarray(tile, dtype=f32)[:, None, None]
    ratio = xp.asarray(ratio, dtype=f32)[:, None, None]
    angle = xp.asarray(angle, dtype=f32)[:, None, None]
    shift_x = xp.asarray(shift_x, dtype=f32)[:, None, None]
    shift_y = xp.asarray(shift_y, dtype=f32)[:, None, None]
    y = xp.arange(height, dtype=f32)[None, :, None]
    x = xp.arange(width, dtype=f32)[None, None, :]
    cos, sin = xp.cos(angle), xp.sin(angle)
    fx = (x * cos - y * sin - shift_x) / tile
    fy = (x * sin + y * cos - shift_y) / tile
    in_square = ((fx - xp.floor(fx)) < ratio) & ((fy - xp.floor(fy)) < ratio)
    if square_visible is not None:
        size = square_visible.shape[-1]
        iy = xp.asarray(xp.floor(fy), dtype=xp.int64) % size
        ix = xp.asarray(xp.floor(fx), dtype=xp.int64) % size
        b = xp.arange(tile.shape[0])[:, None, None]
        in_square &= square_visible[b, iy, ix] == 0
    dropped = in_square if mode == 1 else ~in_square
    return xp.asarray(~dropped, dtype=f32)


def box_visible_mask(xp: ModuleType, height: int, width: int, boxes: Array) -> Array:
    """Visibility mask that is 0 inside one box per sample, or inside any of ``K`` boxes.

    Args:
        xp: numpy, cupy or torch.
        height: image height H.
        width: image width W.
        boxes: ``(B, 4)`` or ``(B, K, 4)`` integer ``(y0, x0, y1, x1)``, half-open, already
            clipped; an empty box (y1 ≤ y0 or x1 ≤ x0) drops nothing.

    Returns:
        ``(B, H, W)`` float32.
    """
    boxes = xp.asarray(boxes)
    if len(boxes.shape) == 3:
        inside = box_visible_mask(xp, height, width, boxes[:, 0]) == 0  # K ≥ 1
        for k in range(1, boxes.shape[1]):
            one = box_visible_mask(xp, height, width, boxes[:, k]) == 0
            inside = inside | one
        return xp.asarray(~inside, dtype=xp.float32)
    y = xp.arange(height)[None, :, None]
    x = xp.arange(width)[None, None, :]
    y0, x0, y1, x1 = (boxes[:, i, None, None] for i in range(4))
    inside = (y >= y0) & (y < y1) & (x >= x0) & (x < x1)
    return xp.asarray(~inside, dtype=xp.float32)


def cell_visible_mask(xp: ModuleType, height: int, width: int, cells: Array) -> Array:
    """Upsample an ``n×n`` cell mask to pixels with GridMix's cell boundaries.

    Cell ``(i, j)`` covers rows ``[floor(i·H/n), floor((i+1)·H/n))`` and the same for
    columns: a pixel in row ``y`` belongs to cell ``#{i ≥ 1 : floor(i·H/n) ≤ y}``.

    Args:
        xp: numpy, cupy or torch.
        height: image height H.
        width: image width W.
        cells: ``(B, n, n)`` 0/1, 1 = cell kept from the image itself.

    Returns:
        ``(B, H, W)`` float32.
    """
    cells = xp.asarray(cells)
    n = cells.shape[-1]
    row_cell = _cell_index(xp, height, n)
    col_cell = _cell_index(xp, width, n)
    return xp.asarray(cells[:, row_cell[:, None], col_cell[None, :]], dtype=xp.float32)


def _cell_index(xp: ModuleType, size: int, n: int) -> Array:
    """``(size,)`` int64: the cell of each pixel, boundaries at ``floor(i·size/n)``."""
    starts = (xp.arange(1, n, dtype=xp.int64) * size) // n
    return xp.searchsorted(starts, xp.arange(size, dtype=xp.int64), side="right")
