"""``ColorJitter(p=...)`` (timm's ``color_jitter_prob``): the whole jitter applies with
probability p per sample (host coin), the rest are untouched; p=1 draws what it always drew.
Real DALI CPU pipelines on generated JPEGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from dali_gridaug import create_loader
from dali_gridaug.params import sample_preset
from dali_gridaug.presets import ColorJitter, Lighting, Preset


def _images(root: Path, jitter: ColorJitter | None, epochs: int) -> np.ndarray:
    preset = Preset("p", color_jitter=jitter)
    loader = create_loader(root, batch_size=20, device="cpu", image_size=32, seed=4, preset=preset)
    return np.concatenate([b.images.numpy() for _ in range(epochs) for b in loader])


def test_fraction_jittered_is_p(sample_data: dict[str, Path]) -> None:
    root = sample_data["train"]
    plain = _images(root, None, 5)
    jittered = _images(root, ColorJitter(0.4, 0.4, 0.4, p=0.3), 5)
    same = (plain == jittered).all((1, 2, 3))  # un-jittered samples are bitwise untouched
    assert len(same) == 300
    assert stats.binomtest(int((~same).sum()), len(same), 0.3).pvalue > 1e-3


def test_p_one_keeps_the_draws_and_p_below_one_only_skips() -> None:
    def draw(p: float) -> dict:
        cj = ColorJitter(0.4, 0.4, 0.4, p=p)
        preset = Preset("p", color_jitter=cj, lighting=Lighting())
        return sample_preset(preset, np.random.default_rng(1), 500)

    full, half = draw(1.0), draw(0.5)
    old = sample_preset(Preset("p", color_jitter=ColorJitter()), np.random.default_rng(1), 500)
    np.testing.assert_array_equal(full["jitter"], old["jitter"])
    kept = (half["jitter"] == full["jitter"]).all(1)
    assert (half["jitter"][~kept] == 1).all() and 200 < kept.sum() < 300
    for k in full:
        if k != "jitter":
            np.testing.assert_array_equal(full[k], half[k])


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_bad_p_names_itself(p: float) -> None:
    with pytest.raises(ValueError, match=r"`color_jitter.p` must be in \[0, 1\]"):
        ColorJitter(p=p)
