"""KeepGridMask: GridMask candidates drawn on the batch's device and the saliency-guided choice.

GridMask (Chen et al., 2020, https://arxiv.org/abs/2001.04086; official code
github.com/dvlab-research/GridMask): period ``d ~ U{d_min … d_max − 1}``, kept stripes of
``l = ceil(d·r)`` pixels, integer offsets ``U{0 … d − 1}`` per axis, rotation
``U{0 … rotate − 1}`` degrees. KeepGridMask (our extension of KeepAugment, Gong et al., 2021)
draws ``k`` such masks per image and keeps one, uniformly among those whose dropped saliency
is cut-eligible by the rank rule over the ``k`` draws. Its parameters are the augmentation's own
config, a :class:`~dali_gridaug.augment.GridMask` (:data:`GRIDMASK_FIELDS` of it).

The parameters are drawn with torch on the batch's device (no host synchronisation), keyed
by each sample's key (:mod:`dali_gridaug.saliency.keyed`: streams ``GRID_TILE``,
``GRID_DEGREES``, ``GRID_SHIFT_X``, ``GRID_SHIFT_Y`` for the candidates, ``GRID_CHOICE`` for the
one kept), so a sample's candidates do not depend on its batch; the
masks come from :func:`dali_gridaug.kernels.grid_visible_mask`, the kernel the GridMask
augmentation uses. Masks are built in chunks of samples so that at most ``max_elements``
candidate-mask values exist at a time; the choice is made once for the whole batch, so the
result does not depend on the chunk size.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from dali_gridaug.augment import GridMask
from dali_gridaug.kernels import grid_visible_mask
from dali_gridaug.saliency.keyed import Stream, integers_below
from dali_gridaug.saliency.regions import (
    SCORE_BITS,
    eligibility_weights,
    masked_choice,
    quantize_saliency,
    saliency_peak,
)
from dali_gridaug.saliency.torch_geometry import degrees_to_radians, grid_ratio

MAX_MASK_ELEMENTS = 1 << 23
"""Default bound on candidate-mask values alive at once (8 Mi: 32 MiB of float32 masks plus
64 MiB of int64 products)."""


GRIDMASK_FIELDS: tuple[str, ...] = ("r", "d", "rotate", "mode")
"""The fields of a :class:`~dali_gridaug.augment.GridMask` that KeepGridMask draws from; the
others (``p``, ``ramp_epochs``, ``square_p``, ``backend``) belong to the in-graph augmentation
(the Keep stage masks every image, from epoch 0, with standard GridMask squares)."""


def default_gridmask(height: int) -> GridMask:
    """KeepGridMask's GridMask when none is given, for images of height ``height``:
    ``GridMask(r=0.6, d=(max(2, H // 3), H), rotate=360, mode=1)``, the period range scaled to
    the image (GridMask's own default ``d = (96, 224)`` is ImageNet's, in pixels).

    Raises:
        ValueError: ``height < 3`` (no such range).
    """
    if height < 3:
        raise ValueError(
            f"the default `gridmask` d = (max(2, H // 3), H) needs H >= 3, got H = {height}; "
            "pass `gridmask=GridMask(d=...)` explicitly"
        )
    return GridMask(r=0.6, d=(max(2, height // 3), height), rotate=360, mode=1)


@dataclasses.dataclass(frozen=True)
class GridDraws:
    """The ``k`` GridMask candidates of each sample, ``(B, k)`` float32 each.

    Attributes:
        tile: period ``d`` in pixels (an integer value).
        ratio: dropped fraction of the period per axis, ``(d − l) / d`` with ``l = ceil(d·r)``.
        angle: rotation in radians (an integer number of degrees).
        shift_x: grid offset in pixels along the rotated x axis, ``U{0 … d − 1}``.
        shift_y: grid offset in pixels along the rotated y axis, ``U{0 … d − 1}``.
    """

    tile: torch.Tensor
    ratio: torch.Tensor
    angle: torch.Tensor
    shift_x: torch.Tensor
    shift_y: torch.Tensor

    def masks(self, rows: slice, height: int, width: int, mode: int) -> torch.Tensor:
        """``(n, k, H, W)`` float32 visibility masks of the samples ``rows`` (draws' device)."""
        fields = (self.tile, self.ratio, self.angle, self.shift_x, self.shift_y)
        n, k = self.tile[rows].shape
        with self.tile.device:  # the kernel's factory functions follow the default device
            out = grid_visible_mask(
                torch, height, width, *(f[rows].reshape(-1) for f in fields), mode=mode
            )
        return out.reshape(n, k, height, width)

    def pick(self, draw: torch.Tensor) -> GridDraws:
        """The draws ``draw`` (``(B,)`` int64) of each sample, as ``(B, 1)`` fields."""
        index = draw[:, None]
        return GridDraws(*(f.gather(1, index) for f in dataclasses.astuple(self)))


def sample_grid_draws(gridmask: GridMask, keys: torch.Tensor, draws: int) -> GridDraws:
    """GridMask parameters as the GridMask augmentation draws them, ``(B, draws)`` per field.

    The rule of :func:`dali_gridaug.geometry.sample_grid` (``d ~ U{d_min … d_max − 1}``,
    ``l = ceil(d·r)``, degrees ``U{0 … rotate − 1}``, offsets ``U{0 … d − 1}``), with torch on
    the device of ``keys`` through :mod:`~dali_gridaug.saliency.torch_geometry`. Candidate
    ``j`` of a sample is the ``j``-th value of each of its keyed streams ``GRID_TILE``,
    ``GRID_DEGREES``, ``GRID_SHIFT_X``, ``GRID_SHIFT_Y``.

    Args:
        gridmask: the GridMask parameters (its :data:`GRIDMASK_FIELDS` ``r``, ``d``,
            ``rotate``; ``mode`` is the caller's, in :func:`choose_grid_draw`).
        keys: ``(B,)`` int64 sample keys (:func:`~dali_gridaug.saliency.keyed.sample_keys`).
        draws: candidates ``k`` per sample.
    """
    d_min, d_max = gridmask.d
    ones = torch.ones((keys.shape[0], draws), dtype=torch.int64, device=keys.device)
    tile = d_min + integers_below(keys, Stream.GRID_TILE, ones * (d_max - d_min))
    degrees = integers_below(keys, Stream.GRID_DEGREES, ones * gridmask.rotate)
    shift_x = integers_below(keys, Stream.GRID_SHIFT_X, tile)
    shift_y = integers_below(keys, Stream.GRID_SHIFT_Y, tile)
    return GridDraws(
        tile=tile.float(),
        ratio=grid_ratio(tile, gridmask.r),
        angle=degrees_to_radians(degrees),
        shift_x=shift_x.float(),
        shift_y=shift_y.float(),
    )


def choose_grid_draw(
    saliency: torch.Tensor,
    grid: GridDraws,
    *,
    height: int,
    width: int,
    mode: int,
    tau: float,
    keys: torch.Tensor,
    max_elements: int = MAX_MASK_ELEMENTS,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Score every candidate by the saliency it drops and keep a cut-eligible one per sample.

    Args:
        saliency: ``(B, h, w)`` float32 map; a low-resolution map is upsampled to ``H×W`` by
            nearest neighbour.
        grid: ``(B, k)`` candidates.
        height: image height H.
        width: image width W.
        mode: GridMask mode (1 drops the squares, 0 keeps only them).
        tau: quantile in ``(0, 1)`` of the rank rule over the ``k`` draws.
        keys: ``(B,)`` int64 sample keys on the device of ``saliency`` (the choice uses their
            ``GRID_CHOICE`` stream).
        max_elements: at most this many candidate-mask values (``n·k·H·W``) exist at a time;
            at least one sample per chunk. The result does not depend on it.

    Returns:
        ``keep``: ``(B, H, W)`` float32 chosen visibility mask; ``dropped``: ``(B, k)`` float32
        ``Σ g·(1 − mask)`` per candidate (summed exactly on the saliency quantized to
        ``2^-24`` of each image's maximum, as the window scores); ``draw``: ``(B,)`` int64
        chosen candidate.
    """
    b, k = grid.tile.shape
    if saliency.shape[-2:] != (height, width):
        saliency = F.interpolate(saliency[:, None], size=(height, width), mode="nearest")[:, 0]
    # integer scores (saliency quantized per image): exact sums, independent of the chunking
    q = quantize_saliency(saliency)
    rows = max(1, max_elements // (k * height * width))
    scores = torch.cat(
        [
            torch.where(
                grid.masks(slice(start, start + rows), height, width, mode) > 0,
                0,
                q[start : start + rows, None],
            ).sum(dim=(-2, -1))
            for start in range(0, b, rows)
        ]
    )
    draw = masked_choice(eligibility_weights(scores, tau, "cut"), keys, Stream.GRID_CHOICE)
    chosen = grid.pick(draw)
    keep = torch.cat(
        [
            chosen.masks(slice(start, start + rows * k), height, width, mode)[:, 0]
            for start in range(0, b, rows * k)
        ]
    )
    dropped = scores.to(torch.float64) * (saliency_peak(saliency)[:, None] / 2.0**SCORE_BITS)
    return keep, dropped.float(), draw
