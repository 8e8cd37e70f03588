"""Candidate boxes of the Keep stage: the baselines' clipped boxes and low-resolution mapping.

Two box rules for selective-cut (KeepAugment, Gong et al., 2021, with the Cutout and CutMix
baselines' geometry from :mod:`dali_gridaug.geometry`):

- ``"inside"``: all windows fully inside the image, stride 1
  (:func:`dali_gridaug.saliency.regions.select_windows`);
- ``"clip"``: the box ``[c − s//2, c + s//2)`` per axis centred on each of the H·W pixels and
  clipped to the image, as the official Cutout and CutMix code draws it.

For low-resolution saliency (a ×0.5 map) the box is chosen on the small map with half the
side and its position mapped back with a random offset, so every full-resolution position is
reachable (:func:`upscale_positions`). Everything is batched torch on the saliency's device,
without host synchronisation; every draw is keyed by the sample's key
(:mod:`dali_gridaug.saliency.keyed`): the choice by its ``BOX`` stream, the offsets by its
``OFFSET_Y`` and ``OFFSET_X`` streams.
"""

from __future__ import annotations

from typing import Literal

import torch

from dali_gridaug.geometry import centred_box
from dali_gridaug.saliency.keyed import Stream, integers_below
from dali_gridaug.saliency.regions import (
    Which,
    eligibility_weights,
    integral_image,
    masked_choice,
    per_sample,
    select_windows,
)

BoxRule = Literal["clip", "inside"]
BOX_RULES: tuple[str, ...] = ("clip", "inside")


def clip_boxes(
    cy: torch.Tensor,
    cx: torch.Tensor,
    side_h: torch.Tensor,
    side_w: torch.Tensor,
    height: int,
    width: int,
) -> torch.Tensor:
    """The Cutout/CutMix baselines' box ``[c − s//2, c + s//2)`` per axis, clipped to the image.

    Stacks :func:`dali_gridaug.geometry.centred_box` (the one definition of the rule, shared
    with the augmentations), evaluated on torch tensors.

    Args:
        cy: centre rows, int64, any shape broadcastable with the others.
        cx: centre columns, int64.
        side_h: box heights ``s`` in pixels, int64.
        side_w: box widths in pixels, int64.
        height: image height H.
        width: image width W.

    Returns:
        int64 ``(..., 4)`` boxes ``(y0, x0, y1, x1)``, half-open, inside ``[0, H] × [0, W]``.
    """
    box = centred_box(cy, cx, side_h, side_w, height, width)
    return torch.stack(torch.broadcast_tensors(*box), dim=-1)


def clipped_box_scores(
    integral: torch.Tensor, heights: int | torch.Tensor, widths: int | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores of the clipped boxes centred on every pixel (the Cutout/CutMix baselines' rule).

    The box of side ``s`` and centre ``c`` is ``[c − s//2, c + s//2)`` per axis clipped to the
    image (:func:`clip_boxes`), as in the official Cutout and CutMix code. Every pixel is a
    candidate, so there are ``H·W`` per image and none is padding.

    Args:
        integral: ``(B, H + 1, W + 1)`` int64 from :func:`integral_image`.
        heights: box side ``s ≥ 0`` along y in pixels, an int or ``(B,)`` int64.
        widths: box side along x in pixels, an int or ``(B,)`` int64.

    Returns:
        ``scores``: ``(B, H, W)`` int64 saliency sum over the clipped box of each centre;
        ``boxes``: ``(B, H, W, 4)`` int64 ``(y0, x0, y1, x1)`` of those clipped boxes.
    """
    b, hp1, wp1 = integral.shape
    height, width = hp1 - 1, wp1 - 1
    dev = integral.device
    hs = per_sample(heights, b, dev)[:, None, None]
    ws = per_sample(widths, b, dev)[:, None, None]
    y = torch.arange(height, device=dev)[None, :, None]
    x = torch.arange(width, device=dev)[None, None, :]
    boxes = clip_boxes(y, x, hs, ws, height, width).expand(b, height, width, 4)
    y0, x0, y1, x1 = boxes.unbind(-1)
    flat = integral.reshape(b, -1)

    def at(yy: torch.Tensor, xx: torch.Tensor) -> torch.Tensor:
        return flat.gather(1, (yy * wp1 + xx).reshape(b, -1)).reshape(b, height, width)

    scores = at(y1, x1) - at(y0, x1) - at(y1, x0) + at(y0, x0)
    return scores, boxes


def select_clipped_boxes(
    saliency: torch.Tensor,
    heights: int | torch.Tensor,
    widths: int | torch.Tensor,
    *,
    tau: float,
    which: Which,
    keys: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one cut- or paste-eligible clipped box per image (centre among all pixels).

    The candidates are the ``H·W`` clipped boxes of :func:`clipped_box_scores`; eligibility is
    the rank rule of :func:`eligibility_weights` over them and the choice is uniform among the
    eligible centres. With an all-zero map every candidate ties and the centre is uniform over
    all pixels: exactly the baselines' box distribution. Otherwise border boxes, clipped and
    so covering less saliency, are cut-eligible more often than interior ones, so the mean
    cut area is somewhat below the baselines' (KeepCutMix, α = 1, 32×32: about 0.25 of the
    image against CutMix's 0.30).

    Args:
        saliency: ``(B, H, W)`` non-negative saliency.
        heights: box side along y in pixels, an int or ``(B,)`` int64.
        widths: box side along x in pixels, an int or ``(B,)`` int64.
        tau: quantile in ``(0, 1)``.
        which: ``"cut"`` or ``"paste"``.
        keys: ``(B,)`` int64 sample keys on the device of ``saliency``.

    Returns:
        ``boxes``: ``(B, 4)`` int64 clipped boxes ``(y0, x0, y1, x1)``, half-open (possibly
        empty for a side below 2); ``centres``: ``(B, 2)`` int64 ``(cy, cx)``.
    """
    b, height, width = saliency.shape
    scores, boxes = clipped_box_scores(integral_image(saliency), heights, widths)
    index = masked_choice(eligibility_weights(scores.reshape(b, -1), tau, which), keys)
    chosen = boxes.reshape(b, -1, 4).gather(1, index[:, None, None].expand(b, 1, 4))[:, 0]
    cy = torch.div(index, width, rounding_mode="floor")
    return chosen, torch.stack((cy, index - cy * width), dim=1)


def upscale_positions(
    low: torch.Tensor,
    low_last: int | torch.Tensor,
    full_last: int | torch.Tensor,
    keys: torch.Tensor,
    stream: int = Stream.OFFSET_Y,
) -> torch.Tensor:
    """Map positions on a ×0.5 map to full resolution, reaching every full position.

    Low position ``p`` stands for the full positions ``2p`` and ``2p + 1``; the last low
    position ``low_last`` stands for every full position from ``2·low_last`` up to
    ``full_last``. The full position is drawn uniformly among those (``2p + U{0, …, span}``,
    ``span = 1``, or ``max(1, full_last − 2·low_last)`` at the last position) and clamped to
    ``full_last``. So every full position in ``[0, full_last]`` is reachable (odd ones
    included), and a uniform choice on the low map gives probability ``1 / (2·n_low)`` to
    each of the interior full positions.

    Args:
        low: ``(B,)`` int64 positions on the low-resolution axis, in ``[0, low_last]``.
        low_last: largest low position (``(B,)`` int64 or int).
        full_last: largest full-resolution position (``(B,)`` int64 or int), ``≥ 0``.
        keys: ``(B,)`` int64 sample keys on the device of ``low``.
        stream: the keyed stream of the offset (``OFFSET_Y`` for rows, ``OFFSET_X`` for
            columns).

    Returns:
        ``(B,)`` int64 full-resolution positions in ``[0, full_last]``.
    """
    b, dev = low.shape[0], low.device
    low_last = per_sample(low_last, b, dev)
    full_last = per_sample(full_last, b, dev)
    span = torch.where(low >= low_last, (full_last - 2 * low).clamp_min(1), 1)
    offset = integers_below(keys, stream, (span + 1)[:, None])[:, 0].clamp(max=span)
    return torch.minimum(2 * low + offset, full_last)


def upscale_boxes(
    boxes: torch.Tensor,
    heights: int | torch.Tensor,
    widths: int | torch.Tensor,
    height: int,
    width: int,
    keys: torch.Tensor,
) -> torch.Tensor:
    """Map fully-inside windows chosen on a ×0.5 map back to full resolution.

    The top-left corner goes through :func:`upscale_positions` on each axis (the low map has
    ``height // 2`` rows, so its last top-left row is ``height // 2 − h_low``; the full last
    one is ``height − h``); the full-resolution size is kept. Every full-resolution top-left
    position is reachable, odd offsets included.

    Args:
        boxes: ``(B, 4)`` int64 ``(y0, x0, y1, x1)`` on the low-resolution map.
        heights: full-resolution box height (≤ ``height``), an int or ``(B,)`` int64.
        widths: full-resolution box width (≤ ``width``), an int or ``(B,)`` int64.
        height: full image height H.
        width: full image width W.
        keys: ``(B,)`` int64 sample keys on the device of ``boxes`` (the offsets use their
            ``OFFSET_Y`` and ``OFFSET_X`` streams).

    Returns:
        ``(B, 4)`` int64 boxes fully inside the ``H×W`` image.
    """
    b = boxes.shape[0]
    hs = per_sample(heights, b, boxes.device)
    ws = per_sample(widths, b, boxes.device)
    low_h, low_w = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    y0 = upscale_positions(boxes[:, 0], height // 2 - low_h, height - hs, keys, Stream.OFFSET_Y)
    x0 = upscale_positions(boxes[:, 1], width // 2 - low_w, width - ws, keys, Stream.OFFSET_X)
    return torch.stack((y0, x0, y0 + hs, x0 + ws), dim=1)


def half_side(sides: torch.Tensor) -> torch.Tensor:
    """Box side on the ×0.5 map: ``s // 2``, at least 1 unless ``s = 0`` (an empty box)."""
    return torch.where(sides > 0, (sides // 2).clamp_min(1), sides)


def select_boxes(
    saliency: torch.Tensor,
    heights: torch.Tensor,
    widths: torch.Tensor,
    size: tuple[int, int],
    *,
    rule: BoxRule,
    which: Which,
    tau: float,
    keys: torch.Tensor,
) -> torch.Tensor:
    """Draw one eligible box per image of ``size`` from a full- or half-resolution map.

    Args:
        saliency: ``(B, H, W)`` map of the image, or ``(B, H // 2, W // 2)`` (low resolution:
            boxes of :func:`half_side` chosen there, mapped back with keyed random offsets).
        heights: ``(B,)`` int64 full-resolution box sides along y.
        widths: ``(B,)`` int64 full-resolution box sides along x.
        size: the image ``(H, W)``.
        rule: ``"inside"`` or ``"clip"``.
        which: ``"cut"`` or ``"paste"``.
        tau: quantile in ``(0, 1)``.
        keys: ``(B,)`` int64 sample keys on the device of ``saliency``.

    Returns:
        ``(B, 4)`` int64 boxes ``(y0, x0, y1, x1)`` on the ``H×W`` image, half-open.
    """
    height, width = size
    kw = {"tau": tau, "which": which, "keys": keys}
    full = saliency.shape[-2:] == (height, width)
    if rule == "inside":
        if full:
            return select_windows(saliency, heights, widths, **kw)
        low = select_windows(saliency, half_side(heights), half_side(widths), **kw)
        return upscale_boxes(low, heights, widths, height, width, keys)
    if full:
        return select_clipped_boxes(saliency, heights, widths, **kw)[0]
    _, centre = select_clipped_boxes(saliency, half_side(heights), half_side(widths), **kw)
    low_height, low_width = saliency.shape[-2:]
    cy = upscale_positions(centre[:, 0], low_height - 1, height - 1, keys, Stream.OFFSET_Y)
    cx = upscale_positions(centre[:, 1], low_width - 1, width - 1, keys, Stream.OFFSET_X)
    return clip_boxes(cy, cx, heights, widths, height, width)
