"""Cutout and random erasing: box geometry, fill, apply rate, backends agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dali_gridaug import Cutout, RandomErasing, create_loader
from dali_gridaug.kernels import box_visible_mask
from tests.helpers import collect


def _collect(root: Path, aug, epochs=4):
    loader = create_loader(
        root, batch_size=32, device="cpu", image_size=64, mean=0, std=1, augment=[aug], seed=2
    )
    return collect(loader, epochs, ("0.applied", "0.box"))


def _dropped(images: np.ndarray) -> np.ndarray:
    return np.abs(images).max(1) <= 1


@pytest.mark.parametrize("backend", ["dali", "kernel"])
def test_cutout_zeroes_exactly_the_clipped_box(color_data: Path, backend: str) -> None:
    out = _collect(color_data, Cutout(length=16, p=1.0, backend=backend))
    visible = box_visible_mask(np, 64, 64, out["0.box"])
    assert np.array_equal(_dropped(out["images"]), visible == 0)
    box = out["0.box"]
    side = box[:, 2:] - box[:, :2]
    inside = (box[:, :2] > 0).all(1) & (box[:, 2:] < 64).all(1)
    assert (side[inside] == 16).all() and (side <= 16).all()
    assert (side[~inside] < 16).any()  # some were clipped at a border


def test_cutout_apply_rate(color_data: Path) -> None:
    out = _collect(color_data, Cutout(length=8, p=0.5), epochs=20)
    rate = out["0.applied"].mean()
    assert abs(rate - 0.5) < 4 * np.sqrt(0.25 / out["0.applied"].size)
    assert np.array_equal(_dropped(out["images"]).any((1, 2)), out["0.applied"].astype(bool))


def test_cutout_centre_is_uniform_over_pixels(color_data: Path) -> None:
    out = _collect(color_data, Cutout(length=16, p=1.0), epochs=63)
    drop = _dropped(out["images"]).mean(0)
    # corners are covered less (clipping), the centre at rate 16²/64² exactly in expectation
    assert abs(drop[24:40, 24:40].mean() - 256 / 4096) < 0.01
    assert drop[0, 0] < drop[32, 32]


@pytest.mark.parametrize("backend", ["dali", "kernel"])
def test_random_erasing_noise_fill(color_data: Path, backend: str) -> None:
    out = _collect(color_data, RandomErasing(p=1.0, value="random", backend=backend))
    visible = box_visible_mask(np, 64, 64, out["0.box"])
    noise = out["images"].transpose(0, 2, 3, 1)[visible == 0]
    assert noise.size > 1000
    assert abs(noise.mean()) < 0.1 and abs(noise.std() - 1) < 0.1  # standard normal
    area = (visible == 0).mean((1, 2))
    assert ((area >= 0.02 - 0.01) & (area <= 1 / 3 + 0.02)).all()


def test_random_erasing_constant_fill(color_data: Path) -> None:
    out = _collect(color_data, RandomErasing(p=1.0, value=0))
    visible = box_visible_mask(np, 64, 64, out["0.box"])
    assert np.array_equal(_dropped(out["images"]), visible == 0)


def test_cutout_longer_than_the_image_fails_at_construction(color_data: Path) -> None:
    with pytest.raises(ValueError, match=r"`length` must be in \[1, 32\].*got 40"):
        create_loader(
            color_data, batch_size=4, image_size=32, augment=[Cutout(length=40)], device="cpu"
        )
