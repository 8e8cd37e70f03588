"""The Keep stage's box and grid rules, exactly: device placement, low-resolution sides,
independent offsets per axis, the GridMask candidates' scores and the keyed choice."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from dali_gridaug.augment import GridMask
from dali_gridaug.saliency import grid as grid_module
from dali_gridaug.saliency import keyed
from dali_gridaug.saliency.boxes import (
    clipped_box_scores,
    half_side,
    select_boxes,
    upscale_boxes,
)
from dali_gridaug.saliency.grid import (
    choose_grid_draw,
    default_gridmask,
    sample_grid_draws,
)
from dali_gridaug.saliency.keyed import Stream
from dali_gridaug.saliency.regions import (
    SCORE_BITS,
    eligibility_weights,
    masked_choice,
    per_sample,
    quantize_saliency,
    select_windows,
    window_scores,
)
from tests.helpers import chi_square_p_ok

META = torch.device("meta")


@pytest.mark.parametrize("rule", ["clip", "inside"])
@pytest.mark.parametrize("low", [False, True])
def test_box_rules_make_every_tensor_on_the_saliency_device(rule: str, low: bool) -> None:
    """On the ``meta`` device a tensor created on the host (an ``arange`` or a per-sample
    size without ``device=``) is an error ("not on the expected device"), as it would be a
    host tensor, or a host-device copy, on CUDA: the rules follow the saliency's device."""
    h = w = 16
    saliency = torch.rand((3, h // 2, w // 2) if low else (3, h, w), device=META)
    sides = torch.tensor([4, 5, 6], device=META)
    keys = torch.zeros(3, dtype=torch.int64, device=META)
    box = select_boxes(saliency, sides, sides, (h, w), rule=rule, which="cut", tau=0.5, keys=keys)
    assert box.device == META and box.shape == (3, 4)


def test_int_sides_are_made_on_the_device_too() -> None:
    """A side given as an int becomes a per-sample tensor on the saliency's device."""
    integral = torch.zeros(2, 9, 9, dtype=torch.int64, device=META)
    keys = torch.zeros(2, dtype=torch.int64, device=META)
    for scores, other in (clipped_box_scores(integral, 3, 4), window_scores(integral, 3, 4)):
        assert scores.device == other.device == META
    low = torch.zeros(2, 4, dtype=torch.int64, device=META)
    assert upscale_boxes(low, 3, 2, 8, 8, keys).device == META
    saliency = torch.rand(2, 8, 8, device=META)
    window = select_windows(saliency, 3, 4, tau=0.5, which="paste", keys=keys)
    assert window.device == META


def test_keyed_beta_is_drawn_on_the_keys_device() -> None:
    keys = torch.zeros(3, dtype=torch.int64, device=META)
    assert keyed.beta(keys, Stream.CUTMIX_LAMBDA, 1.0).device == META


def test_grid_choice_makes_every_tensor_on_the_saliency_device() -> None:
    keys = torch.zeros(2, dtype=torch.int64, device=META)
    grid = sample_grid_draws(default_gridmask(12), keys, 4)
    keep, dropped, draw = choose_grid_draw(
        torch.rand(2, 12, 12, device=META), grid, height=12, width=12, mode=1, tau=0.5, keys=keys
    )
    assert {keep.device, dropped.device, draw.device} == {META}


def test_half_side_halves_and_keeps_empty_boxes_empty() -> None:
    """``s // 2``, at least 1, but an empty box (``s = 0``) stays empty, int64."""
    out = half_side(torch.tensor([0, 1, 2, 3, 4, 5, 9]))
    assert out.dtype == torch.int64
    assert out.tolist() == [0, 1, 1, 1, 2, 2, 4]


def test_upscaled_offsets_are_independent_per_axis() -> None:
    """Each axis has its own keyed stream (``OFFSET_Y``, ``OFFSET_X``). A box at low position
    (0, 0) of a side-1 window maps to full position (o_y, o_x) with o ∈ {0, 1}; with one
    stream for both axes o_y = o_x always. χ² of independence over the 2×2 table of 4,000
    samples (seed fixed); a shared stream puts every sample on the diagonal (p ≈ 0)."""
    n = 4000
    keys = keyed.sample_keys(5, 0, torch.arange(n))
    low = torch.tensor([[0, 0, 1, 1]]).expand(n, 4)
    full = upscale_boxes(low, 2, 2, 16, 16, keys)
    oy, ox = full[:, 0], full[:, 1]
    assert set(oy.tolist()) == {0, 1} and set(ox.tolist()) == {0, 1}
    table = torch.zeros(2, 2)
    table.index_put_((oy, ox), torch.ones(n), accumulate=True)
    assert stats.chi2_contingency(table.numpy()).pvalue > 1e-3
    assert 0.4 < (oy == ox).float().mean() < 0.6


def test_default_gridmask_ends() -> None:
    """``d = (max(2, H // 3), H)``, defined from H = 3 on; below, a message that says what to
    pass."""
    assert default_gridmask(3) == GridMask(r=0.6, d=(2, 3), rotate=360, mode=1)
    assert default_gridmask(96).d == (32, 96)
    with pytest.raises(ValueError) as info:
        default_gridmask(2)
    assert str(info.value) == (
        "the default `gridmask` d = (max(2, H // 3), H) needs H >= 3, got H = 2; "
        "pass `gridmask=GridMask(d=...)` explicitly"
    )


def scores_of(saliency: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """``(B, k)`` int64 ``Σ q·(1 − mask)`` on the quantized saliency (the rule, spelled out)."""
    q = quantize_saliency(saliency)[:, None]
    return (q * (masks == 0)).sum(dim=(-2, -1))


@pytest.mark.parametrize("mode", [0, 1])
def test_grid_scores_and_the_choice_are_the_rule(mode: int) -> None:
    """``dropped`` is the saliency under the dropped pixels (``Σ g·(1 − mask)``, in the
    map's units); the kept draw is the inverse CDF of the sample's ``GRID_CHOICE`` uniform
    over the cut-eligible weights; mode 0 drops exactly the pixels mode 1 keeps."""
    b, k, h, w = 6, 5, 24, 24
    keys = keyed.sample_keys(1, 2, torch.arange(b))
    grid = sample_grid_draws(GridMask(r=0.5, d=(6, 12), rotate=30, mode=mode), keys, k)
    saliency = torch.zeros(b, h, w)
    saliency[:, 5, 7] = 3.0  # one pixel at the peak: a candidate drops all of it or none
    saliency[:, 10:14, 2:9] = 0.75
    masks = grid.masks(slice(0, b), h, w, mode)
    other = grid.masks(slice(0, b), h, w, 1 - mode)
    assert torch.equal(masks + other, torch.ones_like(masks))
    keep, dropped, draw = choose_grid_draw(
        saliency, grid, height=h, width=w, mode=mode, tau=0.5, keys=keys
    )
    scores = scores_of(saliency, masks)
    expected = scores.double() * 3.0 / 2.0**24  # the peak, 3.0, is 2^24 quanta
    torch.testing.assert_close(dropped.double(), expected, rtol=1e-7, atol=0)
    want = masked_choice(eligibility_weights(scores, 0.5, "cut"), keys, Stream.GRID_CHOICE)
    assert torch.equal(draw, want)
    assert torch.equal(keep, masks[torch.arange(b), draw])


def test_grid_dropped_is_zero_where_nothing_salient_is_dropped() -> None:
    """One salient pixel: candidates that keep it drop exactly 0 (not the count of kept
    pixels), those that drop it exactly its value."""
    b, k, h, w = 4, 8, 20, 20
    keys = keyed.sample_keys(0, 0, torch.arange(b))
    grid = sample_grid_draws(GridMask(r=0.5, d=(5, 10), rotate=1, mode=1), keys, k)
    saliency = torch.zeros(b, h, w)
    saliency[:, 9, 9] = 2.0
    _, dropped, _ = choose_grid_draw(saliency, grid, height=h, width=w, mode=1, tau=0.5, keys=keys)
    hit = grid.masks(slice(0, b), h, w, 1)[:, :, 9, 9] == 0
    assert hit.any() and (~hit).any()
    assert torch.equal(dropped, hit.float() * 2.0)


def test_grid_chunks_respect_max_elements(monkeypatch: pytest.MonkeyPatch) -> None:
    """At most ``max(1, max_elements // (k·H·W))`` samples' candidate masks per chunk."""
    b, k, h, w = 5, 3, 8, 8
    keys = keyed.sample_keys(0, 1, torch.arange(b))
    draws = sample_grid_draws(default_gridmask(h), keys, k)
    seen = []
    real = grid_module.GridDraws.masks

    def counting(self, rows, height, width, mode):
        out = real(self, rows, height, width, mode)
        seen.append(out.shape[0] * out.shape[1])
        return out

    monkeypatch.setattr(grid_module.GridDraws, "masks", counting)
    saliency = torch.rand(b, h, w)
    choose_grid_draw(
        saliency, draws, height=h, width=w, mode=1, tau=0.5, keys=keys, max_elements=k * h * w
    )
    assert max(seen) * h * w <= k * h * w


def test_nan_and_infinities_count_as_zero_saliency() -> None:
    """NaN, +inf and −inf pixels score as 0: the quantized map equals the one with zeros
    there (on a map whose maximum, 0.5, is below any other replacement value)."""
    clean = torch.rand(1, 6, 6) * 0.5
    clean[0, 2, 2] = 0.5
    dirty = clean.clone()
    zeroed = clean.clone()
    for (y, x), bad in zip([(0, 0), (1, 3), (4, 5)], [float("nan"), float("inf"), -float("inf")]):
        dirty[0, y, x] = bad
        zeroed[0, y, x] = 0.0
    assert torch.equal(quantize_saliency(dirty), quantize_saliency(zeroed))


def test_per_sample_sizes_are_int64_on_the_device() -> None:
    for size in (3, torch.tensor([3, 4], dtype=torch.int32)):
        out = per_sample(size, 2, META)
        assert out.device == META and out.dtype == torch.int64 and out.shape == (2,)


def test_eligibility_rejects_an_unknown_which() -> None:
    with pytest.raises(ValueError) as info:
        eligibility_weights(torch.zeros(1, 3), 0.5, "keep")  # type: ignore[arg-type]
    assert str(info.value) == "`which` must be one of ('cut', 'paste'), got 'keep'"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_eligibility_of_float_scores_with_padding(dtype: torch.dtype) -> None:
    """Padding is ranked above every score (the dtype's maximum), also for float64 scores
    beyond float32's range: the valid entries' ranks, and so their weights, are those of
    the row without padding."""
    big = 1e300 if dtype == torch.float64 else 1e30
    scores = torch.tensor([[3.0, 1.0, 2.0, 0.0, 4.0, 0.0]], dtype=dtype) * big
    valid = torch.tensor([[True, True, True, True, True, False]])
    for which in ("cut", "paste"):
        padded = eligibility_weights(scores, 0.4, which, valid)
        alone = eligibility_weights(scores[:, :5], 0.4, which)
        assert torch.equal(padded[:, :5], alone) and padded[0, 5] == 0


def test_paste_set_of_one_and_two_candidates() -> None:
    """One candidate is both cut- and paste-eligible (ranks [0, 1)); of two, the higher is
    the paste set, whatever τ."""
    one = torch.tensor([[5, 9, 9]])
    valid = torch.tensor([[True, False, False]])
    assert eligibility_weights(one, 0.5, "paste", valid).tolist() == [[1.0, 0.0, 0.0]]
    two = torch.tensor([[7, 2]])
    for tau in (0.1, 0.5, 0.9):
        assert eligibility_weights(two, tau, "paste").tolist() == [[1.0, 0.0]]
        assert eligibility_weights(two, tau, "cut").tolist() == [[0.0, 1.0]]


def test_low_resolution_centre_reaches_the_last_row_and_column_of_an_odd_image() -> None:
    """A 9×9 image has a 4×4 low map; its last low position stands for full positions 6, 7
    and 8, each drawn with probability 1/3 per axis (the clip rule's centre). The only
    paste-eligible low box (side 2, τ = 0.9) covers the peak at (3, 3), so the full centre is
    uniform on {6, 7, 8}², y0 = x0 = c − 2 ∈ {4, 5, 6}; χ² over 3,000 samples (a rule ending
    at 2·3 + 1 = 7 leaves 8 unreached, p ≈ 0)."""
    n = 3000
    keys = keyed.sample_keys(8, 1, torch.arange(n))
    low = torch.zeros(n, 4, 4)
    low[:, 3, 3] = 1.0
    side = torch.full((n,), 4)
    box = select_boxes(low, side, side, (9, 9), rule="clip", which="paste", tau=0.9, keys=keys)
    for axis in (0, 1):
        counts = np.bincount(box[:, axis].numpy(), minlength=7)
        assert counts[:4].sum() == 0 and chi_square_p_ok(counts[4:], np.full(3, n / 3))


def test_grid_dropped_is_rounded_once_from_the_exact_sum() -> None:
    """``dropped`` is float32 of the exact (float64) sum: the peak 3 plus one quantum
    (3·2^-24) gives 3 + 3·2^-24 → 3 + 2^-22, where a float32 product (2^24 + 1 rounding to
    2^24 first) gives 3."""
    b, k, h, w = 4, 8, 20, 20
    keys = keyed.sample_keys(0, 0, torch.arange(b))
    grid = sample_grid_draws(GridMask(r=0.5, d=(5, 10), rotate=1, mode=1), keys, k)
    saliency = torch.zeros(b, h, w)
    saliency[:, 9, 9] = 3.0
    saliency[:, 9, 10] = 3.0 * 2.0**-SCORE_BITS
    _, dropped, _ = choose_grid_draw(saliency, grid, height=h, width=w, mode=1, tau=0.5, keys=keys)
    masks = grid.masks(slice(0, b), h, w, 1)
    both = (masks[:, :, 9, 9] == 0) & (masks[:, :, 9, 10] == 0)
    assert both.any()
    assert bool((dropped[both] == 3.0 + 2.0**-22).all())
