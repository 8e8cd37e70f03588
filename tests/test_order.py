"""The loader's order rules (:mod:`dali_gridaug.order`) and the epoch schedule, pinned
exactly: the epoch permutation's key, each rank's share of a global batch against a
brute-force enumeration of the README's rule (positions ``[s·G, (s+1)·G)``, rank ``r`` at
``r, r + W, …``), ``drop_last``'s end, the step and batch counts, and GridMask's linear ramp.
Pure NumPy, no DALI: these are the rules mutation testing (issue 23) changes one at a time.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dali_gridaug.augment.schedule import linear_ramp
from dali_gridaug.order import ORDER_STREAM, REPEAT_ROUND, Split, epoch_order, repeat_order


def test_epoch_order_is_keyed_by_seed_and_epoch_alone() -> None:
    order = epoch_order(7, 3, 50, shuffle=True)
    assert order.dtype == np.int64 and sorted(order.tolist()) == list(range(50))
    expected = np.random.default_rng([7, 3, ORDER_STREAM]).permutation(50)
    np.testing.assert_array_equal(order, expected)
    assert ORDER_STREAM == 1 << 20  # the stream the saved states were drawn with
    others = [epoch_order(7, 4, 50, shuffle=True), epoch_order(8, 3, 50, shuffle=True)]
    assert all(not np.array_equal(order, o) for o in others)


def test_epoch_order_without_shuffle_is_the_identity() -> None:
    order = epoch_order(7, 3, 9, shuffle=False)
    assert order.dtype == np.int64
    np.testing.assert_array_equal(order, np.arange(9))


def brute_force(n: int, b: int, w: int, r: int, drop_last: bool, start: int) -> list:
    """The README's rule written as plainly as possible: ``(start, size, positions)`` per
    step where rank ``r`` has at least one row."""
    g = b * w
    end = start + (n - start) // g * g if drop_last else n
    out = []
    p = start
    while p < end:
        size = min(g, end - p)
        mine = [p + i for i in range(size) if i % w == r]
        if mine:
            out.append((p, size, mine))
        p += g
    return out


CASES = [
    (n, b, w, r, d, s)
    for n, b, w, d, s in itertools.product((1, 7, 24, 25, 60), (1, 3, 4), (1, 2, 3), (0, 1), (0, 5))
    for r in range(w)
    if s <= n
]


@pytest.mark.parametrize(("n", "b", "w", "r", "drop_last", "start"), CASES)
def test_a_ranks_steps_are_the_readmes_rule(
    n: int, b: int, w: int, r: int, drop_last: int, start: int
) -> None:
    split = Split(batch_size=b, world=w, rank=r, drop_last=bool(drop_last))
    order = np.arange(100, 100 + n)  # indices distinct from positions
    steps = list(split.steps(order, epoch=4, start=start))
    want = brute_force(n, b, w, r, bool(drop_last), start)
    assert [(s.start, s.size, (s.start + s.rows).tolist()) for s in steps] == want
    for s in steps:
        assert s.epoch == 4 and s.rows.dtype == np.int64
        np.testing.assert_array_equal(s.indices, order[s.start + s.rows])
    assert split.num_batches(n, start) == len(want)
    assert split.global_batch == b * w
    g = b * w
    end = start + (n - start) // g * g if drop_last else n
    assert split.end(n, start) == end
    assert split.num_steps(n, start) == -(-(end - start) // g)


def test_every_position_once_over_the_ranks() -> None:
    """All ranks together read ``[start, end)`` exactly once (``drop_last``: fewer than one
    global batch is left out)."""
    for n, b, w, start, drop in itertools.product((23, 60), (2, 5), (1, 3, 4), (0, 7), (0, 1)):
        got = []
        for r in range(w):
            got += [
                int(p)
                for s in Split(b, w, r, bool(drop)).steps(np.arange(n), 0, start)
                for p in s.start + s.rows
            ]
        assert sorted(got) == list(range(start, Split(b, w, 0, bool(drop)).end(n, start)))
        assert n - Split(b, w, 0, bool(drop)).end(n, start) < (b * w if drop else 1)


def test_steps_start_at_the_epochs_beginning_by_default() -> None:
    split = Split(batch_size=2, world=2, rank=0, drop_last=False)
    first = next(split.steps(np.arange(10), epoch=0))
    assert first.start == 0 and first.rows.tolist() == [0, 2]


def test_num_steps_counts_a_partial_last_step() -> None:
    split = Split(batch_size=4, world=2, rank=0, drop_last=False)
    assert split.num_steps(17) == 3 and split.num_steps(16) == 2 and split.num_steps(0) == 0
    assert split.num_steps(17, start=17) == 0 and split.num_steps(17, start=20) == 0
    late = Split(batch_size=4, world=2, rank=1, drop_last=False)
    assert late.num_batches(17) == 2  # the 1-sample last step has no row for rank 1
    assert late.num_batches(18) == 3


def timm_repeat_aug(n: int, repeats: int, world: int, rank: int) -> list[int]:
    """timm 1.0's ``RepeatAugSampler.__iter__`` with ``shuffle=False`` (its formulas,
    written out: ``num_samples = ceil(n·k / W)``, ``num_selected_samples = floor(n // 256 ·
    256 / W)`` or ``ceil(n / W)``)."""
    import math

    indices = [i for i in range(n) for _ in range(repeats)]
    num_samples = math.ceil(n * repeats / world)
    total = num_samples * world
    indices += indices[: total - len(indices)]
    selected = math.floor(n // 256 * 256 / world) if n >= 256 else math.ceil(n / world)
    return indices[rank:total:world][:selected]


REPEATS = [
    (10, 3, 4),
    (60, 2, 3),
    (256, 3, 3),
    (700, 3, 8),
    (255, 1, 2),
    (5, 3, 7),
    (5, 1, 7),
    (10, 1, 4),
]


@pytest.mark.parametrize(("n", "k", "w"), REPEATS)
def test_repeat_order_is_timms_rule(n: int, k: int, w: int) -> None:
    order = repeat_order(np.arange(n), k, w)
    assert order.dtype == np.int64 and len(order) % w == 0
    for r in range(w):
        assert order[r::w].tolist() == timm_repeat_aug(n, k, w, r)
    assert REPEAT_ROUND == 256


def test_repeat_order_keeps_the_permutation() -> None:
    perm = np.array([4, 0, 3, 1, 2])
    # each index twice in a row, cut to RepeatAugSampler's ceil(N / W) = 5 positions
    np.testing.assert_array_equal(repeat_order(perm, 2, 1), [4, 4, 0, 0, 3])


@pytest.mark.parametrize(
    ("p", "epoch", "ramp", "want"),
    [
        (0.8, 0, 10, 0.0),
        (0.8, 5, 10, 0.4),
        (0.8, 10, 10, 0.8),
        (0.8, 30, 10, 0.8),
        (0.8, -3, 10, 0.0),
        (0.6, 0, 0, 0.6),
        (0.6, 7, 0, 0.6),
        (0.6, 2, -1, 0.6),
        (1.0, 1, 4, 0.25),
        (0.8, 0, 1, 0.0),
        (0.8, 1, 1, 0.8),
    ],
)
def test_linear_ramp(p: float, epoch: int, ramp: int, want: float) -> None:
    assert linear_ramp(p, epoch, ramp) == pytest.approx(want, abs=1e-12)
