"""Window scores, rank-based eligibility and the masked choice (inverse CDF), batched in torch.

KeepAugment (Gong et al., 2021, https://arxiv.org/abs/2011.11778), Algorithm 1 and the
"Remark" of §3:

1. Candidates are all ``h×w`` windows fully inside the image, stride 1 (``box="inside"``),
   or the boxes centred on every pixel and clipped to the image, as the Cutout and CutMix
   baselines draw them (``box="clip"``); a candidate's score is the sum of the saliency over
   it (a box filter, evaluated with an integral image).
2. Per image, with ``n`` candidates and ``k = ceil(τ·n)`` (clamped to ``[1, n − 1]`` so that
   both sets are non-empty; a single candidate belongs to both), the candidates are ranked by
   score: cut-eligible = the ``k`` lowest-ranked, paste-eligible = the other ``n − k``.
3. The window is drawn uniformly from the eligible set by inverse CDF over a ``(B, N)``
   weight matrix (``cumsum`` + ``searchsorted`` of one keyed uniform per sample,
   :mod:`dali_gridaug.saliency.keyed`): no rejection loop, no per-sample Python loop.

Exact ties. Scores are computed in integer arithmetic on a saliency quantized to
``2^-24`` of each image's maximum, so equal windows tie exactly and CPU and CUDA agree bit for
bit (a float integral image would break ties by rounding noise, e.g. on constant saliency).
Tied candidates are ranked in a uniformly random order, not by index: a block of ``c`` tied
candidates of which ``m`` fall inside the eligible ranks gets weight ``m / c`` each, which is
the marginal of "shuffle the ties, take the ranks, choose uniformly". Away from ties the
weights are exactly 0/1. Constant or all-zero saliency therefore gives the uniform
distribution over *all* candidates (degenerate saliency terminates and is uniform),
where an index tie-break would only ever cut windows from the top rows of the image.
"""

from __future__ import annotations

from typing import Literal

import torch

from dali_gridaug.saliency.keyed import Stream, inverse_cdf, uniform

Which = Literal["cut", "paste"]
WHICH = ("cut", "paste")

SCORE_BITS = 24
"""Saliency is quantized to integers in ``[0, 2^SCORE_BITS]`` per image before scoring."""

_TAU_SLACK = 1e-9  # so that ceil(0.7 · 10) = 7, not 8 from 7.000000000000001


def quantize_saliency(saliency: torch.Tensor, bits: int = SCORE_BITS) -> torch.Tensor:
    """Scale each map to ``[0, 2^bits]`` by its maximum and round to integers.

    Args:
        saliency: ``(B, H, W)`` non-negative saliency (any float dtype); NaN counts as 0.
        bits: resolution of the quantization.

    Returns:
        ``(B, H, W)`` int64; an all-zero map stays all zero.
    """
    g = _clean(saliency)
    peak = saliency_peak(g)[:, None, None]
    return torch.round(g / peak * float(2**bits)).to(torch.int64)


def _clean(saliency: torch.Tensor) -> torch.Tensor:
    return torch.nan_to_num(saliency.float(), nan=0.0, posinf=0.0, neginf=0.0).clamp_min(0.0)


def saliency_peak(saliency: torch.Tensor) -> torch.Tensor:
    """``(B,)`` float32 per-image maximum that :func:`quantize_saliency` scales by (≥ tiny).

    Args:
        saliency: ``(B, H, W)`` saliency; NaN and negative values count as 0.
    """
    tiny = torch.finfo(torch.float32).tiny
    return _clean(saliency).amax(dim=(-2, -1)).clamp_min(tiny)


def integral_image(saliency: torch.Tensor) -> torch.Tensor:
    """Zero-padded integral image of the quantized saliency.

    Args:
        saliency: ``(B, H, W)`` non-negative saliency.

    Returns:
        ``(B, H + 1, W + 1)`` int64 with ``I[b, y, x] = Σ q[b, :y, :x]``.
    """
    q = quantize_saliency(saliency)
    b, h, w = q.shape
    out = q.new_zeros((b, h + 1, w + 1))
    out[:, 1:, 1:] = q.cumsum(dim=1).cumsum(dim=2)
    return out


def per_sample(size: int | torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
    """``(batch,)`` int64 per-sample sizes from an int or a tensor (on ``device``)."""
    if isinstance(size, torch.Tensor):
        return size.to(device=device, dtype=torch.int64).reshape(batch)
    return torch.full((batch,), int(size), dtype=torch.int64, device=device)


def window_scores(
    integral: torch.Tensor, heights: int | torch.Tensor, widths: int | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores of all windows of a per-sample size, indexed by their top-left pixel.

    One gather-based evaluation serves a fixed window (Cutout, paste) and per-sample sizes
    (KeepCutMix) alike, so there is a single code path.

    Args:
        integral: ``(B, H + 1, W + 1)`` int64 from :func:`integral_image`.
        heights: window height in pixels, an int or ``(B,)`` int64.
        widths: window width in pixels, an int or ``(B,)`` int64.

    Returns:
        ``scores``: ``(B, H, W)`` int64, the window sum for the window whose top-left pixel is
        ``(y, x)``; ``valid``: ``(B, H, W)`` bool, True where that window is fully inside the
        image (``y + h ≤ H`` and ``x + w ≤ W``).
    """
    b, hp1, wp1 = integral.shape
    height, width = hp1 - 1, wp1 - 1
    dev = integral.device
    hs = per_sample(heights, b, dev)[:, None, None]
    ws = per_sample(widths, b, dev)[:, None, None]
    y = torch.arange(height, device=dev)[None, :, None]
    x = torch.arange(width, device=dev)[None, None, :]
    valid = (y + hs <= height) & (x + ws <= width)
    y1 = (y + hs).clamp(max=height)
    x1 = (x + ws).clamp(max=width)
    flat = integral.reshape(b, -1)

    def at(yy: torch.Tensor, xx: torch.Tensor) -> torch.Tensor:
        index = (yy * wp1 + xx).expand(b, height, width).reshape(b, -1)
        return flat.gather(1, index)

    scores = at(y1, x1) - at(y, x1) - at(y1, x) + at(y, x)
    return scores.reshape(b, height, width), valid


def cut_count(n: torch.Tensor, tau: float) -> torch.Tensor:
    """Number ``k`` of cut-eligible candidates among ``n``: ``ceil(τ·n)`` in ``[1, max(n−1, 1)]``.

    Args:
        n: ``(B,)`` int64 candidate counts (≥ 1).
        tau: quantile in ``(0, 1)``.

    Returns:
        ``(B,)`` int64.
    """
    k = torch.ceil(n.to(torch.float64) * tau - _TAU_SLACK).to(torch.int64)
    return torch.minimum(k.clamp_min(1), (n - 1).clamp_min(1))


def eligibility_weights(
    scores: torch.Tensor, tau: float, which: Which, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-candidate inclusion weight in the cut- or paste-eligible set (rank rule).

    Ranks ``[0, k)`` are cut-eligible and ``[k, n)`` paste-eligible (``[0, 1)`` for both when
    ``n = 1``). A block of ``c`` exactly tied candidates occupying ranks ``[lt, lt + c)`` gets
    weight ``|[lt, lt + c) ∩ eligible ranks| / c`` each, i.e. ties are ranked in random order.
    The weights of a row sum to the size of its eligible set.

    Args:
        scores: ``(B, N)`` candidate scores (int64 window sums or float draw scores).
        tau: quantile in ``(0, 1)``.
        which: ``"cut"`` (low scores) or ``"paste"`` (high scores).
        valid: optional ``(B, N)`` bool; False marks padding that is never eligible.

    Returns:
        ``(B, N)`` float32 weights in ``[0, 1]``: 1 = eligible, 0 = not, fractional only on a
        tie block straddling the threshold.
    """
    if which not in WHICH:
        raise ValueError(f"`which` must be one of {WHICH}, got {which!r}")
    if valid is None:
        valid = torch.ones_like(scores, dtype=torch.bool)
    if scores.is_floating_point():
        sentinel = torch.finfo(scores.dtype).max
    else:
        sentinel = torch.iinfo(scores.dtype).max
    s = scores.masked_fill(~valid, sentinel)
    ordered = s.sort(dim=1).values
    below = torch.searchsorted(ordered, s, side="left")
    through = torch.searchsorted(ordered, s, side="right")
    n = valid.sum(dim=1)
    k = cut_count(n, tau)
    if which == "cut":
        lo, hi = torch.zeros_like(k), k
    else:
        lo, hi = torch.minimum(k, n - 1), n
    overlap = torch.minimum(through, hi[:, None]) - torch.maximum(below, lo[:, None])
    weights = overlap.clamp_min(0).to(torch.float32) / (through - below).clamp_min(1)
    return torch.where(valid, weights, torch.zeros_like(weights))


def masked_choice(
    weights: torch.Tensor, keys: torch.Tensor, stream: int = Stream.BOX
) -> torch.Tensor:
    """One index per row, with probability proportional to ``weights`` (masked choice).

    Inverse CDF (:func:`~dali_gridaug.saliency.keyed.inverse_cdf`) of the sample's keyed
    uniform of ``stream``: the index is a function of the row's weights and its key only, and
    nothing is read back to the host.

    Args:
        weights: ``(B, N)`` non-negative float, every row with a positive entry.
        keys: ``(B,)`` int64 sample keys (:func:`~dali_gridaug.saliency.keyed.sample_keys`)
            on the device of ``weights``.
        stream: the keyed stream of the uniform.

    Returns:
        ``(B,)`` int64 column indices.
    """
    return inverse_cdf(weights, uniform(keys, stream, 1)[:, 0])


def select_windows(
    saliency: torch.Tensor,
    heights: int | torch.Tensor,
    widths: int | torch.Tensor,
    *,
    tau: float,
    which: Which,
    keys: torch.Tensor,
) -> torch.Tensor:
    """Draw one cut- or paste-eligible window per image.

    Args:
        saliency: ``(B, H, W)`` non-negative saliency.
        heights: window height in pixels (``0 ≤ h ≤ H``), an int or ``(B,)`` int64.
        widths: window width in pixels (``0 ≤ w ≤ W``), an int or ``(B,)`` int64.
        tau: quantile in ``(0, 1)``.
        which: ``"cut"`` or ``"paste"``.
        keys: ``(B,)`` int64 sample keys on the device of ``saliency`` (the choice uses
            their :attr:`~dali_gridaug.saliency.keyed.Stream.BOX` uniform).

    Returns:
        ``(B, 4)`` int64 boxes ``(y0, x0, y1, x1)``, half-open, fully inside the image.
    """
    b, height, width = saliency.shape
    hs = per_sample(heights, b, saliency.device)
    ws = per_sample(widths, b, saliency.device)
    scores, valid = window_scores(integral_image(saliency), hs, ws)
    weights = eligibility_weights(scores.reshape(b, -1), tau, which, valid.reshape(b, -1))
    index = masked_choice(weights, keys)
    y0 = torch.div(index, width, rounding_mode="floor")
    x0 = index - y0 * width
    return torch.stack((y0, x0, y0 + hs, x0 + ws), dim=1)
