"""Window scores, rank eligibility, the uniformity of the choice and low-resolution boxes
mapped back to full resolution (KeepAugment §3).

Oracles are independent: brute-force NumPy window sums and sorts for the regions, chi-square
tests for the uniformity of the choice.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dali_gridaug.saliency.boxes import upscale_boxes, upscale_positions
from dali_gridaug.saliency.keyed import sample_keys
from dali_gridaug.saliency.regions import (
    cut_count,
    eligibility_weights,
    integral_image,
    quantize_saliency,
    select_windows,
    window_scores,
)
from tests.helpers import chi_square_p_ok


def keys(n: int, seed: int = 0, epoch: int = 0) -> torch.Tensor:
    """``(n,)`` sample keys of positions ``0 … n − 1``."""
    return sample_keys(seed, epoch, torch.arange(n))


# -- window scores -----------------------------------------------------------------------------


def brute_window_sums(q: np.ndarray, h: int, w: int) -> np.ndarray:
    """``(H − h + 1, W − w + 1)`` sums by explicit slicing (any dtype)."""
    rows, cols = q.shape[0] - h + 1, q.shape[1] - w + 1
    out = np.zeros((rows, cols), dtype=q.dtype)
    for y in range(rows):
        for x in range(cols):
            out[y, x] = q[y : y + h, x : x + w].sum()
    return out


def test_window_scores_equal_bruteforce_sums_for_per_sample_sizes() -> None:
    torch.manual_seed(3)
    g = torch.rand(4, 9, 11)
    heights = torch.tensor([3, 0, 9, 1])
    widths = torch.tensor([4, 5, 11, 11])
    scores, valid = window_scores(integral_image(g), heights, widths)
    q = quantize_saliency(g).numpy()
    assert q.max() == 2**24
    for b in range(4):
        h, w = int(heights[b]), int(widths[b])
        sums = brute_window_sums(q[b], h, w)[:9, :11]  # the grid holds top-lefts inside
        rows, cols = sums.shape
        expected_valid = np.zeros((9, 11), dtype=bool)
        expected_valid[:rows, :cols] = True
        np.testing.assert_array_equal(valid[b].numpy(), expected_valid)
        np.testing.assert_array_equal(scores[b, :rows, :cols].numpy(), sums)


def test_cut_count_is_ceil_tau_n_with_both_sets_non_empty() -> None:
    """``ceil(τ·n)`` clamped to ``[1, n − 1]`` (n ≥ 2): the top of the range is reached."""
    n = torch.tensor([10, 10, 36, 1, 2, 5, 10, 3])
    taus = [0.7, 0.6, 0.6, 0.6, 0.99, 0.01, 0.95, 0.9]
    got = [cut_count(n[i : i + 1], t) for i, t in enumerate(taus)]
    assert {k.dtype for k in got} == {torch.int64}
    assert [int(k[0]) for k in got] == [7, 6, 22, 1, 1, 1, 9, 2]


def test_cut_and_paste_weights_partition_the_candidates() -> None:
    torch.manual_seed(4)
    scores = torch.randint(0, 4, (50, 13))  # many ties
    cut = eligibility_weights(scores, 0.6, "cut")
    paste = eligibility_weights(scores, 0.6, "paste")
    torch.testing.assert_close(cut + paste, torch.ones_like(cut))
    torch.testing.assert_close(cut.sum(1), torch.full((50,), 8.0))  # ceil(0.6 · 13)
    # weights are monotone in the score: a lower score is never less cut-eligible
    order = scores.argsort(dim=1, stable=True)
    sorted_cut = cut.gather(1, order)
    assert bool((sorted_cut[:, 1:] <= sorted_cut[:, :-1] + 1e-7).all())


def test_single_candidate_is_both_cut_and_paste_eligible() -> None:
    g = torch.rand(3, 6, 6)
    for which in ("cut", "paste"):
        boxes = select_windows(g, 6, 6, tau=0.6, which=which, keys=keys(3))
        assert boxes.tolist() == [[0, 0, 6, 6]] * 3


# -- selection: eligibility and uniformity -----------------------------------------------------

H = W = 8
L = 3
DRAWS = 4000


def brute_eligible(g: np.ndarray, tau: float, which: str) -> tuple[np.ndarray, np.ndarray]:
    """Window sums in float64 and the eligible set by sorting (distinct scores)."""
    sums = brute_window_sums(g.astype(np.float64), L, L).ravel()
    n = sums.size
    k = min(max(math.ceil(round(tau * n, 9)), 1), max(n - 1, 1))
    ranked = np.argsort(sums, kind="stable")
    eligible = ranked[:k] if which == "cut" else ranked[k:]
    return sums, np.sort(eligible)


def draw_many(g: np.ndarray, which: str, seed: int) -> np.ndarray:
    """Flat window index (on the ``(H − L + 1)²`` grid) of DRAWS batched draws on one map."""
    maps = torch.from_numpy(g).float().expand(DRAWS, H, W).contiguous()
    boxes = select_windows(maps, L, L, tau=0.6, which=which, keys=keys(DRAWS, seed))
    assert bool(
        ((boxes[:, 2] - boxes[:, 0]) == L).all() and ((boxes[:, 3] - boxes[:, 1]) == L).all()
    )
    assert bool((boxes[:, :2] >= 0).all() and (boxes[:, 2] <= H).all() and (boxes[:, 3] <= W).all())
    return (boxes[:, 0] * (W - L + 1) + boxes[:, 1]).numpy()


@pytest.mark.parametrize("which", ["cut", "paste"])
def test_chosen_windows_are_eligible_and_uniform(which: str) -> None:
    g = np.random.default_rng(5).random((H, W))
    sums, eligible = brute_eligible(g, 0.6, which)
    gaps = np.diff(np.sort(sums))
    assert gaps.min() > L * L * 2.0**-24 * g.max()  # distinct beyond the score quantization
    chosen = draw_many(g, which, seed=6)
    assert set(chosen.tolist()) <= set(eligible.tolist())
    counts = np.bincount(chosen, minlength=sums.size)[eligible]
    assert chi_square_p_ok(counts, np.full(eligible.size, DRAWS / eligible.size))
    # the whole eligible set is reachable (22 cut / 14 paste of 36)
    assert eligible.size == (22 if which == "cut" else 14) and (counts > 0).all()


@pytest.mark.parametrize("which", ["cut", "paste"])
@pytest.mark.parametrize("value", [0.0, 0.37])
@pytest.mark.slow
def test_constant_saliency_terminates_and_is_uniform_over_all(which: str, value: float) -> None:
    g = np.full((H, W), value)
    chosen = draw_many(g, which, seed=7)
    n = (H - L + 1) * (W - L + 1)
    counts = np.bincount(chosen, minlength=n)
    assert chi_square_p_ok(counts, np.full(n, DRAWS / n))


@pytest.mark.parametrize("which", ["cut", "paste"])
def test_ties_straddling_the_threshold_follow_the_random_rank_rule(which: str) -> None:
    g = np.zeros((H, W))
    g[4, 4] = 1.0  # 9 windows contain the pixel (score 1), 27 are tied at 0
    sums = brute_window_sums(g, L, L).ravel()
    n = sums.size
    k = math.ceil(0.6 * n)
    lo, hi = (0, k) if which == "cut" else (k, n)
    # shuffle ties, take ranks [lo, hi): a tie block [lt, lt + eq) contributes its overlap
    lt = np.array([(sums < v).sum() for v in sums])
    eq = np.array([(sums == v).sum() for v in sums])
    overlap = np.clip(np.minimum(hi, lt + eq) - np.maximum(lo, lt), 0, None)
    probs = overlap / eq / (hi - lo)
    assert abs(probs.sum() - 1) < 1e-12
    chosen = draw_many(g, which, seed=8)
    counts = np.bincount(chosen, minlength=n)
    assert (counts[probs == 0] == 0).all()
    support = probs > 0
    assert chi_square_p_ok(counts[support], DRAWS * probs[support])


def test_same_keys_give_same_windows() -> None:
    g = torch.rand(16, 12, 12)
    a = select_windows(g, 4, 4, tau=0.6, which="cut", keys=keys(16, 9))
    b = select_windows(g, 4, 4, tau=0.6, which="cut", keys=keys(16, 9))
    assert torch.equal(a, b)
    c = select_windows(g, 4, 4, tau=0.6, which="cut", keys=keys(16, 10))
    assert not torch.equal(a, c)


@pytest.mark.parametrize(
    ("size", "length"), [((33, 31), 7), ((32, 32), 8), ((9, 20), 1), ((20, 9), 1)]
)
def test_lowres_boxes_map_back_inside_the_image(size: tuple[int, int], length: int) -> None:
    height, width = size
    low_h, low_w = height // 2, width // 2
    low_len = max(length // 2, 1)
    ys, xs = torch.meshgrid(
        torch.arange(low_h - low_len + 1), torch.arange(low_w - low_len + 1), indexing="ij"
    )
    low = torch.stack((ys, xs, ys + low_len, xs + low_len), dim=-1).reshape(-1, 4)
    draws = 64  # every low box many times: the random offsets reach every full position
    low = low.repeat(draws, 1)
    full = upscale_boxes(low, length, length, height, width, keys(low.shape[0], 3))
    assert bool((full[:, :2] >= 0).all() and (full[:, 2] <= height).all())
    assert bool((full[:, 3] <= width).all())
    assert bool(((full[:, 2:] - full[:, :2]) == length).all())
    # away from the last low position, the top-left is 2·p + {0, 1}, both offsets occurring
    interior = (low[:, 0] < low_h - low_len) & (low[:, 1] < low_w - low_len)
    offset = full[interior, :2] - 2 * low[interior, :2]
    assert bool(((offset == 0) | (offset == 1)).all())
    assert set(offset[:, 0].tolist()) == {0, 1} and set(offset[:, 1].tolist()) == {0, 1}
    # every full-resolution top-left position is reached, odd ones included
    assert set(full[:, 0].tolist()) == set(range(height - length + 1))
    assert set(full[:, 1].tolist()) == set(range(width - length + 1))


def test_upscale_positions_is_uniform_over_the_positions_a_low_position_stands_for() -> None:
    n = 40_000
    # low positions 0..4 (last = 4) for full positions 0..12: the last stands for 8..12
    low = torch.full((n,), 4, dtype=torch.int64)
    full = upscale_positions(low, 4, 12, keys(n, 4, 0))
    counts = np.bincount(full.numpy(), minlength=13)
    assert counts[:8].sum() == 0
    assert chi_square_p_ok(counts[8:], np.full(5, n / 5))
    low = torch.full((n,), 2, dtype=torch.int64)
    counts = np.bincount(upscale_positions(low, 4, 12, keys(n, 4, 1)).numpy(), minlength=13)
    assert counts[4] + counts[5] == n and abs(counts[4] / n - 0.5) < 0.02
    # a last position whose pair overhangs the border is clamped to it
    full = upscale_positions(torch.full((n,), 3, dtype=torch.int64), 3, 6, keys(n, 4, 2))
    assert set(full.tolist()) == {6}
