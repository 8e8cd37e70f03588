"""GridMask against the paper and the official code: keep fraction vs the official algorithm,
stationarity, mode 0, ramp, H≠W, random GridMask, and DALI vs kernel backends on the same
parameters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dali_gridaug import CutMix, GridMask, create_loader
from dali_gridaug.augment import SampleContext
from dali_gridaug.kernels import grid_visible_mask
from tests.conftest import COLORS
from tests.helpers import collect, make_constant_dataset
from tests.reference.official import gridmask_official

KEYS = ("0.applied", "0.tile", "0.ratio", "0.angle", "0.shift_x", "0.shift_y")
CFG = dict(r=0.6, d=(16, 48), rotate=360, p=1.0, ramp_epochs=0)
DRAWS_EPOCHS = 63  # 32 images per epoch → 2,016 draws


def _loader(root: Path, size=(64, 64), **kw):
    return create_loader(
        root,
        batch_size=32,
        device="cpu",
        image_size=size,
        mean=0,
        std=1,
        augment=[GridMask(**{**CFG, **kw})],
        seed=5,
    )


def _kept(images: np.ndarray) -> np.ndarray:
    """(N, H, W) 1 where the pixel survived (every palette colour is ≥ 40, dropped = 0)."""
    return (np.abs(images).max(1) > 1).astype(np.float32)


@pytest.fixture(scope="module")
def draws(color_data: Path) -> dict[str, np.ndarray]:
    return collect(_loader(color_data), DRAWS_EPOCHS, KEYS)


def test_keep_fraction_matches_official_algorithm(draws: dict[str, np.ndarray]) -> None:
    ours = _kept(draws["images"]).mean((1, 2))
    rng = np.random.default_rng(0)
    ref = np.array(
        [
            gridmask_official(64, 64, rng, r=0.6, d=(16, 48), rotate=360, mode=1).mean()
            for _ in range(len(ours))
        ]
    )
    assert len(ours) >= 2000
    se = np.hypot(ours.std(), ref.std()) / np.sqrt(len(ours))
    assert abs(ours.mean() - ref.mean()) < 4 * se + 0.005, (ours.mean(), ref.mean())
    # same spread of per-image keep fractions, not just the same mean
    assert np.allclose(
        np.quantile(ours, [0.1, 0.5, 0.9]), np.quantile(ref, [0.1, 0.5, 0.9]), atol=0.03
    )
    approx = 1 - (1 - 0.6) ** 2  # the paper's ≈ keep ratio
    assert abs(ours.mean() - approx) < 0.08


def test_mask_is_stationary_including_corners(draws: dict[str, np.ndarray]) -> None:
    drop = 1 - _kept(draws["images"]).mean(0)  # (H, W) drop probability per pixel
    overall = drop.mean()
    corners = [drop[:6, :6], drop[:6, -6:], drop[-6:, :6], drop[-6:, -6:], drop[29:35, 29:35]]
    for patch in corners:
        assert abs(patch.mean() - overall) < 0.05
    assert drop.std() < 0.03  # no pixel is systematically favoured


def test_dali_output_equals_numpy_kernel_on_emitted_params(draws: dict[str, np.ndarray]) -> None:
    ref = grid_visible_mask(
        np,
        64,
        64,
        draws["0.tile"],
        draws["0.ratio"] * draws["0.applied"],
        draws["0.angle"],
        draws["0.shift_x"],
        draws["0.shift_y"],
    )
    mismatch = (ref != _kept(draws["images"])).mean()
    assert mismatch < 1e-3  # float rounding exactly on a square's edge only


def test_mode0_is_the_exact_complement(color_data: Path) -> None:
    a = collect(_loader(color_data, backend="kernel"), 2, KEYS)
    b = collect(_loader(color_data, mode=0), 2, KEYS)
    for k in KEYS:
        assert np.array_equal(a[k], b[k])  # same draw
    assert np.array_equal(_kept(a["images"]) + _kept(b["images"]), np.ones_like(_kept(a["images"])))


def test_backends_agree(color_data: Path) -> None:
    a = collect(_loader(color_data, backend="dali"), 2)
    b = collect(_loader(color_data, backend="kernel"), 2)
    assert (_kept(a["images"]) != _kept(b["images"])).mean() < 1e-3


def test_non_square_images(color_data: Path) -> None:
    out = collect(_loader(color_data, size=(40, 72)), 2, KEYS)
    assert out["images"].shape[1:] == (3, 40, 72)
    ref = grid_visible_mask(
        np,
        40,
        72,
        out["0.tile"],
        out["0.ratio"],
        out["0.angle"],
        out["0.shift_x"],
        out["0.shift_y"],
    )
    assert (ref != _kept(out["images"])).mean() < 1e-3


def test_apply_probability_follows_the_ramp(tmp_path: Path) -> None:
    root = make_constant_dataset(tmp_path, COLORS[:8], per_class=32, size=(32, 32))  # 256 files
    loader = create_loader(
        root,
        batch_size=32,
        device="cpu",
        image_size=32,
        mean=0,
        std=1,
        seed=1,
        augment=[GridMask(r=0.4, d=(8, 16), p=0.8, ramp_epochs=4)],
    )
    for epoch in range(7):
        out = collect(loader, 1, ("0.applied", "epoch"))
        assert (out["epoch"] == epoch).all()
        rate = out["0.applied"].mean()
        expected = 0.8 * min(1.0, epoch / 4)
        dropped = (_kept(out["images"]).min((1, 2)) == 0).mean()  # image shows a dropped pixel
        assert abs(rate - expected) <= 4 * np.sqrt(expected * (1 - expected) / 256) + 1e-9
        assert abs(dropped - rate) < 0.02


def test_set_epoch_jumps_the_schedule_without_rebuilding(color_data: Path) -> None:
    loader = create_loader(
        color_data,
        batch_size=32,
        device="cpu",
        image_size=32,
        mean=0,
        std=1,
        augment=[GridMask(r=0.4, d=(8, 16), p=0.8, ramp_epochs=10)],
    )
    pipe = loader.pipe
    loader.set_epoch(10)
    out = collect(loader, 1, ("epoch",))
    assert (out["epoch"] == 10).all() and loader.pipe is pipe


def test_random_gridmask_drops_each_square_with_square_p(color_data: Path) -> None:
    full = collect(_loader(color_data, backend="kernel"), 20)
    half = collect(_loader(color_data, square_p=0.5, backend="kernel"), 20)  # the oracle
    ratio = (1 - _kept(half["images"])).mean() / (1 - _kept(full["images"])).mean()
    assert abs(ratio - 0.5) < 0.05
    assert ((1 - _kept(half["images"])) <= (1 - _kept(full["images"]))).all()  # a subset


def test_random_gridmask_native_equals_the_kernel(color_data: Path) -> None:
    """The warped per-square field gives every pixel its square's coin: the DALI graph and
    the kernel agree on the same draws, for both modes and H≠W (float rounding on a
    square's edge only), and squares really are dropped independently. At r = 0.1 a square
    (0.9 of the period) reaches within 0.05 periods of its field cell's edge: a bilinear
    warp would round its corners to the neighbours' coins."""
    for mode, size, r in ((1, (64, 64), 0.6), (0, (40, 72), 0.6), (1, (48, 48), 0.1)):
        kw = dict(square_p=0.5, mode=mode, size=size, r=r)
        a = collect(_loader(color_data, backend="dali", **kw), 4, KEYS)
        b = collect(_loader(color_data, backend="kernel", **kw), 4, KEYS)
        for k in KEYS:
            assert np.array_equal(a[k], b[k])  # same draw
        assert (_kept(a["images"]) != _kept(b["images"])).mean() < 1e-3
        full = collect(_loader(color_data, backend="dali", mode=mode, size=size, r=r), 4)
        in_square = _kept(a["images"]), _kept(full["images"])  # mode 0 keeps the squares
        if mode == 1:
            in_square = 1 - in_square[0], 1 - in_square[1]
        assert (in_square[0] <= in_square[1]).all()  # a subset of the same draw's squares
        assert ((in_square[1] - in_square[0]).sum((1, 2)) > 0).mean() > 0.75  # some left out


def test_square_field_gives_every_square_its_coin() -> None:
    """The field and warp matrix, sampled as DALI's nearest-neighbour warp does
    (``floor(A·(x + ½, y + ½) + t)``), give each pixel of a square exactly the kernel's coin;
    every lookup lands inside the field."""
    h, w = 30, 50
    aug = GridMask(r=0.6, d=(8, 20), square_p=0.5, p=1.0, ramp_epochs=0)
    p = aug.sample(np.random.default_rng(0), SampleContext(256, h, w))
    grid = [p[k] for k in ("tile", "ratio", "angle", "shift_x", "shift_y")]
    m = p["field_matrix"].astype(np.float64)[:, :, :, None, None]
    y, x = np.mgrid[0:h, 0:w] + 0.5
    iu = np.floor(m[:, 0, 0] * x + m[:, 0, 1] * y + m[:, 0, 2]).astype(np.int64)
    iv = np.floor(m[:, 1, 0] * x + m[:, 1, 1] * y + m[:, 1, 2]).astype(np.int64)
    size = p["field"].shape[1]
    assert iu.min() >= 0 and iv.min() >= 0 and max(iu.max(), iv.max()) < size
    coin = p["field"][np.arange(256)[:, None, None], iv, iu, 0]
    full = grid_visible_mask(np, h, w, *grid)
    rand = grid_visible_mask(np, h, w, *grid, square_visible=p["square_visible"])
    assert np.array_equal(np.where(full == 0, coin, 1), rand)
    assert 0.3 < (rand != full).sum() / (full == 0).sum() < 0.7  # about half the squares


def test_random_gridmask_square_coins_are_fair_and_independent(color_data: Path) -> None:
    """Per image, the dropped share of the full grid's squares ~ square_p, and the spread
    across images is that of independent coins (not one coin per image)."""
    cfg = dict(square_p=0.3, d=(16, 24))
    full = collect(_loader(color_data, backend="kernel", **{**cfg, "square_p": 1.0}), 8)
    rand = collect(_loader(color_data, **cfg), 8)
    dropped_full = (1 - _kept(full["images"])).sum((1, 2))
    share = (1 - _kept(rand["images"])).sum((1, 2)) / dropped_full
    assert abs(share.mean() - 0.3) < 0.03
    assert 0.02 < share.std() < 0.2  # one coin per image would give std ≈ 0.46


def test_random_gridmask_travels_through_the_cutmix_paste(color_data: Path) -> None:
    """Before CutMix the random visibility mask is pasted like the pixels: on the same draws it
    drops a subset of the full grid's pixels and leaves every other pixel as it is."""
    out = {}
    for sp in (0.5, 1.0):
        aug = GridMask(**{**CFG, "square_p": sp})
        loader = create_loader(
            color_data,
            batch_size=32,
            device="cpu",
            image_size=64,
            mean=0,
            std=1,
            seed=5,
            augment=[aug, CutMix(mode="elem")],
        )
        out[sp] = collect(loader, 2)["images"]
    dropped, dropped_full = 1 - _kept(out[0.5]), 1 - _kept(out[1.0])
    assert (dropped <= dropped_full).all() and 0.3 < dropped.sum() / dropped_full.sum() < 0.7
    outside = dropped_full[:, None] == 0
    assert np.array_equal(out[0.5] * outside, out[1.0] * outside)


def test_dali_backend_is_the_default_for_every_variant() -> None:
    for kw in ({}, {"mode": 0}, {"square_p": 0.5}, {"square_p": 0.5, "mode": 0}):
        assert GridMask(**kw).resolve_backend() == "dali"
    with pytest.raises(ValueError, match="backend"):
        GridMask(square_p=0.5, backend="numpy")


def test_scaled_to_rounds_the_period_range_from_224_pixels() -> None:
    """``scaled_to(size)``: ``d`` scaled by size/224 (rounded), at least 1, and d_max stays
    above d_min; other fields kept."""
    g = GridMask(d=(96, 224), r=0.4, p=0.5)
    assert g.scaled_to(224).d == (96, 224)
    assert g.scaled_to(32).d == (14, 32)  # round(13.71), round(32.0)
    assert g.scaled_to(64, reference=32).d == (192, 448)
    assert g.scaled_to(1).d == (1, 2)  # max(1, round(0.43)); max(d_min + 1, round(1.0))
    small = GridMask(d=(10, 11)).scaled_to(16)
    assert small.d == (1, 2)  # round(0.71) = 1 and round(0.79) = 1, lifted to d_min + 1
    assert (g.scaled_to(32).r, g.scaled_to(32).p) == (0.4, 0.5)


def test_random_gridmask_native_leaves_unapplied_images_whole(color_data: Path) -> None:
    """With ``p`` < 1, in both modes, the images the DALI graph skips (``applied`` 0) are
    unmasked and the rest match the kernel (a rule that divides by ``applied``, or drops it,
    fails here; the test above has ``p`` = 1)."""
    for mode in (1, 0):
        kw = dict(square_p=0.5, p=0.5, mode=mode)
        a = collect(_loader(color_data, backend="dali", **kw), 1, KEYS)
        b = collect(_loader(color_data, backend="kernel", **kw), 1, KEYS)
        skipped = a["0.applied"].reshape(-1) == 0
        assert 0 < skipped.sum() < len(skipped)
        assert np.array_equal(a["0.applied"], b["0.applied"])
        assert (_kept(a["images"][skipped]) == 1).all()
        assert (_kept(a["images"]) != _kept(b["images"])).mean() < 1e-3


def test_geometry_check_names_the_side_and_closes_its_ends() -> None:
    GridMask(d=(32, 96)).check_geometry(32, 24, 8)  # d_min = the longer side: allowed
    GridMask(d=(8, 96)).check_geometry(32, 24, 8)  # only d_min is checked
    with pytest.raises(ValueError) as info:
        GridMask(d=(33, 96)).check_geometry(32, 24, 8)
    assert str(info.value) == "GridMask: `d` min must be ≤ the image side 32, got (33, 96)"
    with pytest.raises(ValueError, match=r"image side 40, got \(41, 96\)"):
        GridMask(d=(41, 96)).check_geometry(24, 40, 8)
