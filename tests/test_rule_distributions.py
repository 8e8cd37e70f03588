"""Sampling rules whose one-line changes are plausible and would pass a looser suite,
held by proper tests at a fixed seed (issue 23's examples):

- RandomErasing's aspect ``h/w`` is log-uniform in ``ratio`` (timm's rule), not uniform;
- GridMask's period ``d`` covers ``d_min … d_max − 1`` (the official code), never ``d_max``.

Each test also runs the wrong rule through the same check and shows that it fails, so the
stated power is measured, not assumed.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from dali_gridaug.augment import GridMask, RandomErasing, SampleContext

SIDE = 2048  # large boxes: rounding the sides moves log(h/w) by < 0.01
N = 4000


def _log_aspects(aug: RandomErasing, seed: int) -> np.ndarray:
    box = aug.sample(np.random.default_rng(seed), SampleContext(N, SIDE, SIDE))["box"]
    box = box.astype(np.float64)
    h, w = box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]
    return np.log(h / w)


def test_erasing_aspect_is_log_uniform() -> None:
    """KS test of ``log(h/w)`` against U(log r0, log r1), n = 4000: the true rule's p-value
    is well above 0.001; the uniform-in-ratio rule (a plausible slip) gives D ≈ 0.3 against a
    critical value of 0.03 at α = 0.001, p < 1e-100, so the test has power ≈ 1 against it.
    """
    aug = RandomErasing(p=1.0, scale=(0.02, 0.05), ratio=(0.3, 1 / 0.3), mode="const")
    lo, hi = math.log(0.3), math.log(1 / 0.3)
    log_aspect = _log_aspects(aug, seed=0)
    assert len(log_aspect) == N and np.isfinite(log_aspect).all()  # every box placed
    uniform = stats.uniform(loc=lo, scale=hi - lo).cdf
    assert stats.kstest(log_aspect, uniform).pvalue > 1e-3

    # the wrong rule, aspect ~ U(r0, r1), through the same check
    rng = np.random.default_rng(0)
    wrong = np.log(rng.uniform(0.3, 1 / 0.3, N))
    assert stats.kstest(wrong, uniform).pvalue < 1e-10


def test_gridmask_period_covers_d_min_to_d_max_minus_one() -> None:
    """χ² test of ``d`` against U{d_min … d_max − 1} (n = 64·128 draws, 128 values): the
    ends are hit and ``d_max`` never is; a rule reaching ``d_max`` (``integers(d_min,
    d_max + 1)``) fails the range check, and an off-by-one at the start shows as a missing
    ``d_min``.
    """
    d_min, d_max = 96, 224
    aug = GridMask(p=1.0, d=(d_min, d_max))
    tile = aug.sample(np.random.default_rng(1), SampleContext(64 * 128, 224, 224))["tile"]
    tile = tile.astype(np.int64)
    assert tile.min() == d_min and tile.max() == d_max - 1
    counts = np.bincount(tile - d_min, minlength=d_max - d_min)
    assert len(counts) == d_max - d_min
    assert stats.chisquare(counts).pvalue > 1e-3

    wrong = np.random.default_rng(1).integers(d_min, d_max + 1, 64 * 128)
    assert wrong.max() == d_max  # the wrong rule's end shows at this n (P(miss) ≈ e^-64)
