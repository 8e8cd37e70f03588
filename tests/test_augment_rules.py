"""Exact rules of the augmentations that mutation testing (issue 23) found no test held:
the kernel path keeps the image dtype, GridMix's derangement, its label smoothing and the
closed end of its grid size.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from dali_gridaug.augment import (
    AUGMENTATIONS,
    CutMix,
    Cutout,
    GridMask,
    GridMix,
    RandomErasing,
    SampleContext,
)
from dali_gridaug.augment.mixup import MixupCutMix, sample_mix
from dali_gridaug.labels import mix_target

CTX = SampleContext(batch_size=8, height=24, width=32, epoch=3)
#: configs that act on every sample, so the kernel writes every image
ALWAYS = {
    "gridmask": {"p": 1.0, "d": (6, 12), "ramp_epochs": 0},
    "cutout": {"p": 1.0, "length": 8},
    "random_erasing": {"p": 1.0, "backend": "kernel"},  # its noise is drawn for the kernel
    "cutmix": {"p": 1.0},
    "gridmix": {"p": 0.5},
    "mixup": {"p": 1.0},
    "mixup_cutmix": {"prob": 1.0},
}


@pytest.mark.parametrize("name", sorted(ALWAYS))
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_the_kernel_path_keeps_the_image_dtype(name: str, dtype: type) -> None:
    """``apply_xp`` (the ``backend="kernel"`` path, a DALI ``python_function`` whose output
    type is the input's) returns the input's dtype and shape, float16 included (``test_kernels``
    covers float32 for the masks): a cast left at NumPy's default (``astype(None)`` is float64)
    fails here.
    """
    aug = AUGMENTATIONS[name](**ALWAYS[name])
    params = aug.sample(np.random.default_rng(0), CTX)
    images = np.random.default_rng(1).random((8, 24, 32, 3)).astype(dtype)
    out = aug.apply_xp(np, images.copy(), params)
    assert out.dtype == dtype and out.shape == images.shape
    assert not np.array_equal(out, images)  # it did act


def test_gridmix_derangement_has_no_fixed_point_and_the_default_has_some() -> None:
    rng = np.random.default_rng(0)
    own = np.arange(CTX.batch_size)
    deranged = [GridMix(derangement=True).sample(rng, CTX)["partner"] for _ in range(200)]
    assert not any((p == own).any() for p in deranged)
    plain = [GridMix().sample(rng, CTX)["partner"] for _ in range(200)]
    # a uniform permutation of 8 has a fixed point with probability 1 − 1/e ≈ 0.63
    assert 0.5 < np.mean([(p == own).any() for p in plain]) < 0.75


def test_gridmix_labels_smooth_by_the_given_epsilon_and_default_to_none() -> None:
    aug, k = GridMix(n=2, p=0.5), 5
    params = {n: torch.as_tensor(v) for n, v in aug.sample(np.random.default_rng(2), CTX).items()}
    y = torch.arange(CTX.batch_size) % k
    lam, partner = params["lam"].float(), params["partner"].long()
    plain = mix_target(y, y[partner], lam, k)
    torch.testing.assert_close(aug.labels(params, y, k).target, plain)
    eps = 0.1
    torch.testing.assert_close(aug.labels(params, y, k, eps).target, (1 - eps) * plain + eps / k)


def test_gridmix_grid_may_be_as_fine_as_the_image_side() -> None:
    GridMix(n=24).check_geometry(24, 32, 8)  # one-pixel cells: allowed
    with pytest.raises(ValueError, match=r"`n` must be in \[1, 24\] \(the image side\), got 25"):
        GridMix(n=25).check_geometry(24, 32, 8)


def test_gridmix_derangement_is_type_checked_by_name() -> None:
    with pytest.raises(TypeError, match=r"^`derangement` must be bool"):
        GridMix(derangement=1)


def test_mixup_cutmix_needs_an_alpha_and_says_so() -> None:
    with pytest.raises(ValueError) as info:
        MixupCutMix(mixup_alpha=0.0, cutmix_alpha=0.0)
    assert str(info.value) == (
        "`mixup_alpha` or `cutmix_alpha` must be > 0 (or `cutmix_minmax` set), "
        "got mixup_alpha=0 and cutmix_alpha=0"
    )


def test_mixup_cutmix_hands_correct_lam_to_the_rule() -> None:
    """timm's ``correct_lam``: True makes λ the box's true share, 1 − area/(H·W), after the
    box is clipped at the image's edge; False keeps the Beta draw."""
    h, w = CTX.height, CTX.width
    corrected, kept = [], []
    for seed in range(20):
        for correct, out in ((True, corrected), (False, kept)):
            aug = MixupCutMix(mixup_alpha=0.0, cutmix_alpha=1.0, correct_lam=correct)
            p = aug.sample(np.random.default_rng(seed), CTX)
            y0, x0, y1, x1 = p["box"][0].astype(np.float64)
            out.append((float(p["lam"][0]), 1 - (y1 - y0) * (x1 - x0) / (h * w)))
    assert all(lam == pytest.approx(share, abs=1e-6) for lam, share in corrected)
    assert any(lam != pytest.approx(share, abs=1e-3) for lam, share in kept)


BAD_ARGUMENTS = [
    (GridMask, {"rotate": 1.5}, TypeError, "`rotate` must be int, got 1.5 (float)"),
    (GridMask, {"rotate": 0}, ValueError, "`rotate` must be in [1, 360], got 0"),
    (GridMask, {"rotate": 361}, ValueError, "`rotate` must be in [1, 360], got 361"),
    (GridMask, {"mode": 2}, ValueError, "`mode` must be one of 0, 1; got 2"),
    (GridMask, {"ramp_epochs": 1.5}, TypeError, "`ramp_epochs` must be int, got 1.5 (float)"),
    (GridMask, {"ramp_epochs": -1}, ValueError, "`ramp_epochs` must be in [0, inf), got -1"),
    (GridMask, {"square_p": 1.5}, ValueError, "`square_p` must be in [0, 1], got 1.5"),
    (GridMask, {"square_p": -0.1}, ValueError, "`square_p` must be in [0, 1], got -0.1"),
    (RandomErasing, {"scale": (0.5, 1.5)}, ValueError, "`scale[1]` must be in [0, 1], got 1.5"),
    (CutMix, {"mode": "pair"}, ValueError, "`mode` must be one of 'batch', 'elem'; got 'pair'"),
    (CutMix, {"derangement": 1}, TypeError, "`derangement` must be bool, got 1 (int)"),
    (RandomErasing, {"scale": (-0.1, 0.5)}, ValueError, "`scale[0]` must be in [0, 1], got -0.1"),
    (RandomErasing, {"ratio": (0.0, 2.0)}, ValueError, "`ratio` must be positive, got (0.0, 2.0)"),
    (RandomErasing, {"ratio": (-1.0, 2.0)}, ValueError, "`ratio[0]` must be in [0, inf), got -1.0"),
    (
        RandomErasing,
        {"max_attempts": 1.5},
        TypeError,
        "`max_attempts` must be int, got 1.5 (float)",
    ),
    (RandomErasing, {"max_attempts": 0}, ValueError, "`max_attempts` must be in [1, inf), got 0"),
    (RandomErasing, {"count": (1, 0)}, ValueError, "`count[1]` must be in [1, inf), got 0"),
    (RandomErasing, {"count": (2, 1)}, ValueError, "`count` must satisfy min ≤ max, got (2, 1)"),
    (
        RandomErasing,
        {"value": "random", "mode": "rand"},
        ValueError,
        "`value`='random' means mode 'pixel', but `mode` is 'rand'; drop `value`",
    ),
    (
        RandomErasing,
        {"value": 0.5, "mode": "pixel"},
        ValueError,
        "`value` is the constant fill of mode 'const', but `mode` is 'pixel' (got value=0.5); "
        "drop `value` or use mode='const'",
    ),
]
#: the closed ends of the same ranges, accepted
GOOD_ARGUMENTS = [
    (GridMask, {"rotate": 1}),
    (GridMask, {"rotate": 360}),
    (GridMask, {"square_p": 0.0}),
    (GridMask, {"square_p": 1.0}),
    (GridMask, {"ramp_epochs": 0}),
    (RandomErasing, {"scale": (0.0, 1.0)}),
    (RandomErasing, {"max_attempts": 1}),
    (RandomErasing, {"count": (2, 2)}),
    (RandomErasing, {"value": "random", "mode": "pixel"}),
    (RandomErasing, {"value": 0.5, "mode": "const"}),
]


@pytest.mark.parametrize(("config", "kwargs", "error", "message"), BAD_ARGUMENTS)
def test_each_argument_is_checked_by_name_with_its_range(
    config: type, kwargs: dict, error: type, message: str
) -> None:
    with pytest.raises(error) as info:
        config(**kwargs)
    assert str(info.value) == message


@pytest.mark.parametrize(("config", "kwargs"), GOOD_ARGUMENTS)
def test_the_ranges_are_closed_where_they_say_so(config: type, kwargs: dict) -> None:
    config(**kwargs)


def test_gridmask_keeps_d_as_a_tuple() -> None:
    assert GridMask(d=[8, 16]).d == (8, 16) and isinstance(GridMask(d=[8, 16]).d, tuple)


def test_cutmix_elem_draws_a_box_per_sample_and_unapplied_samples_keep_lam_one() -> None:
    rng = np.random.default_rng(0)
    boxes = CutMix(mode="elem").sample(rng, CTX)["box"]
    assert len({tuple(b) for b in boxes}) > 1  # not one box for the batch
    lams = np.concatenate([CutMix(p=0.5).sample(rng, CTX)["lam"] for _ in range(50)])
    assert (lams == 1.0).any() and lams.max() == 1.0  # skipped: λ exactly 1, never above


def test_cutout_centres_cover_every_row_and_column() -> None:
    """The official code draws the centre in ``0 … H − 1`` and ``0 … W − 1``: both ends
    appear (a range starting at 1 fails)."""
    rng = np.random.default_rng(0)
    ctx = SampleContext(batch_size=512, height=6, width=5)
    box = np.concatenate([Cutout(length=2).sample(rng, ctx)["box"] for _ in range(4)])
    # a centred length-2 box starts at cy - 1 (clipped at 0) and ends at cy + 1
    ends = box[:, 2:]  # (y1, x1) = (cy + 1, cx + 1), clipped to the image
    assert ends[:, 0].min() == 1 and ends[:, 1].min() == 1


def test_random_erasing_refuses_a_box_as_tall_or_wide_as_the_image() -> None:
    """timm: a box fits when ``h < H`` and ``w < W``, strictly. At 24×32 an area of half the
    image with aspect 1.5 is 24×16 (as tall as the image), at 32×24 with aspect 2/3 16×24: no
    attempt fits, nothing is erased (``<=`` in either test fails here)."""
    for (height, width), ratio in (((24, 32), 1.5), ((32, 24), 2 / 3)):
        ctx = SampleContext(batch_size=64, height=height, width=width)
        aug = RandomErasing(p=1.0, scale=(0.5 - 1e-9, 0.5), ratio=(ratio, ratio + 1e-12))
        box = aug.sample(np.random.default_rng(0), ctx)["box"].reshape(-1, 4)
        assert ((box[:, 2] <= box[:, 0]) | (box[:, 3] <= box[:, 1])).all()  # all empty


def test_random_erasing_positions_cover_the_whole_range_and_stay_inside() -> None:
    """timm places the box at ``randint(0, W − w)`` inclusive: both ends appear, no box
    leaves the image."""
    ctx = SampleContext(batch_size=512, height=24, width=32)
    aug = RandomErasing(p=1.0, scale=(0.25 - 1e-9, 0.25), ratio=(1.5, 1.5 + 1e-12))  # 17×11
    box = aug.sample(np.random.default_rng(0), ctx)["box"].reshape(-1, 4)
    h, w = box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]
    assert (box[:, 2] <= 24).all() and (box[:, 3] <= 32).all()
    assert box[:, 0].min() == 0 and box[:, 1].min() == 0
    assert (box[:, 0] == 24 - h).any() and (box[:, 1] == 32 - w).any()


def test_random_erasing_noise_seeds_are_distinct_int31s() -> None:
    ctx = SampleContext(batch_size=4096, height=24, width=32)
    seeds = (
        RandomErasing(p=1.0, backend="kernel")
        .sample(np.random.default_rng(0), ctx)["noise_seed"]
        .ravel()
    )
    assert seeds.min() >= 0 and seeds.max() < 2**31 and seeds.max() > 2**30
    assert len(np.unique(seeds)) > 4000


def test_cutout_length_is_at_least_one_and_at_most_the_image_side() -> None:
    with pytest.raises(ValueError) as info:
        Cutout(length=0)
    assert str(info.value) == "`length` must be in [1, inf), got 0"
    Cutout(length=1)
    Cutout(length=24).check_geometry(24, 32, 8)  # the shorter side itself is allowed
    with pytest.raises(ValueError, match=r"`length` must be in \[1, 24\]"):
        Cutout(length=25).check_geometry(24, 32, 8)


def test_cutout_boxes_are_clipped_at_every_border() -> None:
    """``[c − l//2, c + l//2)`` with the centre anywhere, clipped to ``[0, H] × [0, W]``: all
    four borders are reached and none is crossed."""
    ctx = SampleContext(batch_size=2048, height=24, width=32)
    box = Cutout(length=8).sample(np.random.default_rng(0), ctx)["box"]
    assert box.min() == 0 and box[:, 2].max() == 24 and box[:, 3].max() == 32
    assert (box[:, 0] == 0).any() and (box[:, 1] == 0).any()
    assert (box[:, 0] <= box[:, 2]).all() and (box[:, 1] <= box[:, 3]).all()


def test_a_sample_left_alone_gets_the_zero_box_its_own_image_and_lam_one() -> None:
    """Skipped by its coin (p = 0), a sample's box is (0, 0, 0, 0), as in ``unmixed()``; a
    CutMix sample keeps λ = 1 and itself as partner, also without the λ correction; a Mixup
    draw of MixupCutMix pastes the zero box."""
    rng = np.random.default_rng(1)
    assert not Cutout(p=0.0).sample(rng, CTX)["box"].any()
    for mode in ("batch", "elem"):
        for correct in (True, False):
            params = CutMix(p=0.0, mode=mode, correct_lam=correct).sample(rng, CTX)
            assert not params["box"].any()
            assert params["lam"].tolist() == [1.0] * 8
            assert params["partner"].tolist() == list(range(8))
    params = CutMix(p=0.5, mode="elem", correct_lam=False).sample(
        rng, SampleContext(batch_size=256, height=24, width=32)
    )
    skipped = ~params["box"].any(axis=1)
    assert skipped.any() and (params["lam"][skipped] == 1.0).all()
    mix = MixupCutMix(mixup_alpha=1.0, cutmix_alpha=0.0, prob=1.0).sample(rng, CTX)
    assert not mix["box"].any() and (mix["lam"] < 1).all()


def test_cutmix_mixes_exactly_the_samples_whose_box_is_not_empty() -> None:
    """On 3×3 images boxes of one pixel are common: a sample is paired with another
    (derangement) exactly when its box has area ≥ 1."""
    ctx = SampleContext(batch_size=512, height=3, width=3)
    params = CutMix(alpha=0.5, mode="elem", derangement=True).sample(np.random.default_rng(2), ctx)
    y0, x0, y1, x1 = params["box"].T
    area = (y1 - y0) * (x1 - x0)
    assert (area == 1).any() and (area == 0).any()
    assert ((params["partner"] != np.arange(512)) == (area > 0)).all()


def test_sample_mix_defaults_are_timms() -> None:
    """``prob = 1``, ``switch_prob = 0.5``, ``mode = "batch"`` (timm's ``Mixup`` defaults):
    one draw for the whole batch, mixed (but for boxes that round to nothing), CutMix in
    half of 2,000 batches (binomial test; switch 1 or 0 gives p ≈ 0)."""
    rng = np.random.default_rng(3)
    cut = mixed = 0
    for _ in range(2000):
        p = sample_mix(rng, 8, 24, 32, mixup_alpha=1.0, cutmix_alpha=1.0)
        assert len(set(p["lam"].tolist())) == 1 and len(set(p["use_cutmix"].tolist())) == 1
        mixed += bool(p["lam"][0] < 1)
        cut += int(p["use_cutmix"][0])
    assert mixed > 1900  # unmixed only where a CutMix box rounds to nothing
    assert stats.binomtest(cut, 2000, 0.5).pvalue > 1e-3


@pytest.mark.parametrize("mode", [0, 1])
def test_gridmask_kernel_leaves_skipped_images_whole(mode: int) -> None:
    aug = GridMask(p=0.5, d=(6, 12), ramp_epochs=0, mode=mode, backend="kernel")
    ctx = SampleContext(batch_size=32, height=24, width=32, epoch=3)
    params = aug.sample(np.random.default_rng(4), ctx)
    images = np.random.default_rng(5).random((32, 24, 32, 3)).astype(np.float32) + 0.5
    out = aug.apply_xp(np, images.copy(), params)
    skipped = params["applied"] == 0
    assert skipped.any() and (~skipped).any()
    assert np.array_equal(out[skipped], images[skipped])
    assert not np.array_equal(out[~skipped], images[~skipped])


#: (augmentation, its emitted parameters, its graph-only ones) at 24×32
EMITTED = [
    (RandomErasing(mode="pixel", backend="kernel"), ["applied", "box"], ["noise_seed"]),
    (
        RandomErasing(mode="pixel", backend="dali"),
        ["applied", "box"],
        ["noise_shape", "noise_start"],
    ),
    (RandomErasing(mode="rand", count=3), ["applied", "box", "color"], []),
    (
        GridMask(square_p=0.5, backend="dali"),
        ["applied", "tile", "ratio", "angle", "shift_x", "shift_y"],
        ["square_visible", "field", "field_matrix"],
    ),
    (
        GridMask(square_p=0.5, backend="kernel"),
        ["applied", "tile", "ratio", "angle", "shift_x", "shift_y"],
        ["square_visible"],
    ),
]


@pytest.mark.parametrize(("aug", "emitted", "internal"), EMITTED)
def test_only_the_documented_parameters_are_emitted(
    aug: object, emitted: list[str], internal: list[str]
) -> None:
    # the loader's outputs are the emitted ones; the rest feed only the graph
    schema = aug.schema(24, 32)
    assert [s.name for s in schema if s.emitted] == emitted
    assert [s.name for s in schema if not s.emitted] == internal
