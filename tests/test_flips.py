"""``hflip``/``vflip`` (timm's flip probabilities): host-drawn coins at rate p, the images
really flipped (against a no-flip loader at the same seed), the clean view flipped alike,
CutMix/GridMix label regions still exact under vflip=1, bad values named. Real DALI CPU
pipelines on generated JPEGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from dali_gridaug import CutMix, GridMix, create_loader
from dali_gridaug.kernels import cell_visible_mask
from dali_gridaug.order import Step
from dali_gridaug.params import FLIP_STREAM, ParamSource
from tests.conftest import COLORS
from tests.helpers import collect, color_ids


def _train(root: Path, **kw):
    kw = {"batch_size": 20, "device": "cpu", "image_size": 32, "seed": 3, **kw}
    return create_loader(root, **kw)


def test_flip_rates_are_binomial(sample_data: dict[str, Path]) -> None:
    out = collect(_train(sample_data["train"], hflip=0.2, vflip=0.7), 10, ("flip", "vflip"))
    for key, p in (("flip", 0.2), ("vflip", 0.7)):
        coins = out[key].ravel()
        assert set(np.unique(coins)) <= {0, 1} and len(coins) == 600
        assert stats.binomtest(int(coins.sum()), len(coins), p).pvalue > 1e-3, key
    assert abs(np.corrcoef(out["flip"], out["vflip"])[0, 1]) < 0.2  # independent streams


def test_default_draws_are_todays_fair_coin() -> None:
    rows = np.arange(16, dtype=np.int64)
    step = Step(2, 32, 16, rows, rows)
    src = ParamSource((), batch_size=16, height=8, width=8, seed=7, rank=0)
    expected = src.rows(step, FLIP_STREAM).integers(0, 2, 16).astype(np.int32)
    np.testing.assert_array_equal(src.draw(step)["flip"], expected)
    assert "vflip" not in src.keys and "vflip" not in src.output_names  # default graph kept
    assert set(
        ParamSource((), batch_size=4, height=8, width=8, seed=0, rank=0, vflip=0.5).draw(step)
    ) >= {"vflip"}


@pytest.mark.parametrize(("h", "v"), [(1.0, 0.0), (0.0, 1.0), (1.0, 1.0)])
def test_images_and_clean_view_are_flipped(sample_data: dict[str, Path], h, v) -> None:
    root = sample_data["train"]
    base = next(iter(_train(root, hflip=0.0, keep_clean=True)))
    flipped = next(iter(_train(root, hflip=h, vflip=v, keep_clean=True)))
    assert torch.equal(base.index, flipped.index)
    dims = [d for d, on in ((2, v), (3, h)) if on]
    for a, b in ((base.images, flipped.images), (base.clean, flipped.clean)):
        assert not torch.equal(a, b)
        torch.testing.assert_close(torch.flip(a, dims), b, rtol=0, atol=0)


def _mix_loader(root: Path, aug, size=(64, 64)):
    return create_loader(
        root,
        batch_size=32,
        device="cpu",
        image_size=size,
        mean=0,
        std=1,
        augment=[aug],
        seed=5,
        vflip=1.0,
    )


def test_cutmix_lam_is_the_pixel_fraction_under_vflip(color_data: Path) -> None:
    loader = _mix_loader(color_data, CutMix(mode="elem"))
    for _ in range(3):
        for b in loader:
            ids = color_ids(b.images, COLORS)
            own = (ids == b.labels[:, None, None].numpy()).mean((1, 2))
            other = (ids == b.labels[b.partner][:, None, None].numpy()).mean((1, 2))
            itself = (b.partner == torch.arange(len(b))).numpy()
            np.testing.assert_allclose(own[~itself], b.lam.numpy()[~itself], atol=1e-6)
            np.testing.assert_allclose(own[~itself] + other[~itself], 1.0, atol=1e-6)


def test_gridmix_cells_match_patch_labels_under_vflip(color_data: Path) -> None:
    h, w = 66, 70
    cell_of_row = cell_visible_mask(np, h, 1, np.arange(4)[None, :, None].repeat(4, 2))[0, :, 0]
    cell_of_col = cell_visible_mask(np, 1, w, np.arange(4)[None, None, :].repeat(4, 1))[0, 0, :]
    loader = _mix_loader(color_data, GridMix(n=4, p=0.6), size=(h, w))
    for _ in range(3):
        for b in loader:
            ids = color_ids(b.images, COLORS)
            labels = b.patch_labels.numpy()
            expected = labels[:, cell_of_row.astype(int)][:, :, cell_of_col.astype(int)]
            assert np.array_equal(ids, expected)


@pytest.mark.parametrize(
    ("kw", "error", "match"),
    [
        ({"hflip": 1.5}, ValueError, r"`hflip` must be in \[0, 1\], got 1.5"),
        ({"vflip": -0.1}, ValueError, r"`vflip` must be in \[0, 1\], got -0.1"),
        ({"vflip": "yes"}, TypeError, r"`vflip` must be"),
        ({"interpolation": "area"}, ValueError, r"`interpolation` must be one of 'bilinear'"),
    ],
)
def test_bad_flip_and_interpolation_arguments(sample_data, kw, error, match) -> None:
    with pytest.raises(error, match=match):
        _train(sample_data["train"], **kw)
