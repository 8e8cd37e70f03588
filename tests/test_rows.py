"""RowGenerator: a rank's rows of draws made for the whole global batch (dali_gridaug.rows).

Each method is checked against the same call on a twin NumPy generator drawing the global
batch (the exact formula), and for the property the loader relies on: a row's value does not
depend on which rank holds it.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from dali_gridaug.rows import RowGenerator

G = 12  # samples in the global batch


def rows_of(seed: int, rows: np.ndarray) -> RowGenerator:
    return RowGenerator(np.random.default_rng(seed), rows, G)


def twin(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_a_rows_draw_is_the_same_at_any_world_size(world: int) -> None:
    """Rank r of ``world`` holds offsets r, r + world, …; its values are those rows of the
    one-rank draw, for every method and trailing shape."""
    everyone = np.arange(G)
    calls = [
        lambda g, b: g.random((b, 3)),
        lambda g, b: g.uniform(-2.0, 5.0, (b,)),
        lambda g, b: g.integers(3, 40, (b, 2)),
        lambda g, b: g.standard_normal(b),
        lambda g, b: g.normal(1.5, 0.25, (b, 4)),
    ]
    for call in calls:
        whole = call(rows_of(7, everyone), G)
        for rank in range(world):
            rows = everyone[rank::world]
            np.testing.assert_array_equal(call(rows_of(7, rows), len(rows)), whole[rows])


def test_random_and_standard_normal_are_the_global_draw_rows() -> None:
    rows = np.array([5, 0, 11])
    np.testing.assert_array_equal(rows_of(3, rows).random((3, 2)), twin(3).random((G, 2))[rows])
    np.testing.assert_array_equal(
        rows_of(3, rows).standard_normal((3, 2)), twin(3).standard_normal((G, 2))[rows]
    )


def test_uniform_and_normal_scale_the_global_draw() -> None:
    """``low + u·(high − low)`` and ``loc + z·scale``, bounds broadcast per row."""
    rows = np.array([1, 4, 9])
    low, high = np.array([0.0, -1.0, 10.0]), np.array([1.0, 3.0, 10.5])
    u = twin(5).random(G)[rows]
    np.testing.assert_allclose(rows_of(5, rows).uniform(low, high), low + u * (high - low))
    z = twin(5).standard_normal(G)[rows]
    loc, scale = np.array([0.0, 2.0, -3.0]), np.array([1.0, 0.5, 4.0])
    np.testing.assert_allclose(rows_of(5, rows).normal(loc, scale), loc + z * scale)


def test_defaults_are_the_unit_interval_and_the_standard_normal() -> None:
    rows = np.arange(G)
    np.testing.assert_array_equal(rows_of(2, rows).uniform(size=G), twin(2).random(G))
    np.testing.assert_array_equal(rows_of(2, rows).normal(size=G), twin(2).standard_normal(G))


def test_integers_is_the_floor_of_the_scaled_uniform() -> None:
    rows = np.arange(G)
    u = twin(11).random(G)
    np.testing.assert_array_equal(
        rows_of(11, rows).integers(4, 10, G), 4 + np.floor(u * 6).astype(np.int64)
    )
    np.testing.assert_array_equal(  # one bound: [0, high)
        rows_of(11, rows).integers(6, size=G), np.floor(u * 6).astype(np.int64)
    )
    out = rows_of(11, rows).integers(4, 10, G)
    assert out.dtype == np.int64
    # float bounds are taken as integers: the draws are int64 all the same
    floats = rows_of(11, rows).integers(4.0, np.float32(10.0), G)
    assert floats.dtype == np.int64 and np.array_equal(floats, out)
    assert rows_of(11, rows).integers(np.float64(6), size=G).dtype == np.int64


def test_integers_reach_both_ends_and_are_uniform() -> None:
    """χ² over ``U{3 … 9}`` with 7,000 draws (seed fixed). An off-by-one range (``[3, 10]``
    or ``[4, 9]``) puts a cell at 0 or adds an eighth value and fails by hundreds of σ; the
    test has > 99 % power against a 20 % tilt of one end cell."""
    n = 7000
    draws = RowGenerator(np.random.default_rng(0), np.arange(n), n).integers(3, 10, n)
    assert draws.min() == 3 and draws.max() == 9
    counts = np.bincount(draws - 3, minlength=7)
    assert len(counts) == 7
    assert stats.chisquare(counts).pvalue > 1e-3


def test_integers_per_row_bounds() -> None:
    """Per-row ``high`` (the GridMask offsets ``U{0 … d − 1}``): row ``i`` draws from its own
    ``[0, high_i)`` and reaches both its ends."""
    n = 4000
    high = np.arange(1, n + 1) % 5 + 1
    out = RowGenerator(np.random.default_rng(1), np.arange(n), n).integers(0, high)
    assert (out >= 0).all() and (out < high).all()
    for h in range(1, 6):
        assert set(out[high == h]) == set(range(h))


def test_a_draw_without_the_batch_dimension_is_refused() -> None:
    g = rows_of(0, np.array([0, 1, 2]))
    with pytest.raises(TypeError, match=r"leading batch dimension of 3, got shape \(4,\)"):
        g.random(4)
    with pytest.raises(TypeError, match=r"leading batch dimension of 3, got shape \(\)"):
        g.uniform(0.0, 1.0)  # scalar bounds, no size: one value for the whole batch
    with pytest.raises(TypeError, match=r"got shape \(2, 3\)"):
        g.integers(0, 5, (2, 3))
    with pytest.raises(TypeError, match="mixing augmentation"):
        g.standard_normal(())
    # the shape may come from the bounds instead of `size`
    assert g.uniform(np.zeros(3), np.ones(3)).shape == (3,)
    assert g.normal(np.zeros((3, 2)), 1.0).shape == (3, 2)
    # … from either bound, broadcast against the other
    assert g.uniform(0.0, np.ones(3)).shape == (3,)
    assert g.uniform(np.zeros((3, 1)), np.ones(2)).shape == (3, 2)
    assert g.normal(0.0, np.ones((3, 2))).shape == (3, 2)
    assert g.integers(np.zeros(3, np.int64), np.full(3, 4)).shape == (3,)
    assert g.integers(np.zeros(3, np.int64), 4).shape == (3,)
    assert g.integers(0, np.full(3, 4)).shape == (3,)
    assert g.random(np.int64(3)).shape == (3,)
