"""Whole epochs: leaving a loop early (``break``, ``raw()``, a saved state) still gives whole
epochs, nested iteration is refused, and uneven shards yield no empty batch (real DALI CPU).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dali_gridaug import create_loader
from dali_gridaug.augment import Cutout
from tests.helpers import INVARIANT_CROP


def _stamped(sample_data: dict[str, Path], **kw: object):
    """60 files in 12 batches of 5; Cutout makes the epoch stamp come with the parameters;
    the host-drawn crop makes the pixels after a rebuild those of an uninterrupted loop
    (DALI's own crop draw restarts with its pipeline)."""
    return create_loader(
        sample_data["train"],
        batch_size=5,
        device="cpu",
        image_size=16,
        seed=7,
        augment=[Cutout(length=4)],
        preset=INVARIANT_CROP,
        **kw,
    )


def _rows(batches) -> list[tuple]:
    return [(b.epoch, b.index.tolist(), b.images) for b in batches]


def _same_rows(a: list[tuple], b: list[tuple]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x[0] == y[0] and x[1] == y[1] and torch.equal(x[2], y[2])


@pytest.fixture(scope="module")
def reference_epochs(sample_data: dict[str, Path]) -> list[list[tuple]]:
    loader = _stamped(sample_data)
    return [_rows(loader) for _ in range(2)]


@pytest.mark.parametrize("set_epoch", [True, False])
@pytest.mark.parametrize("stop", [2, 10, 12])
@pytest.mark.slow
def test_break_then_iterate_gives_a_whole_epoch(
    sample_data: dict[str, Path], reference_epochs: list, set_epoch: bool, stop: int
) -> None:
    """Regression: after ``break`` and ``set_epoch(e + 1)`` the next epoch gave 10 of 12 batches
    (the rest of epoch e, stamped e + 1). Now it is epoch e + 1 whole, exactly the batches an
    uninterrupted run gives: same files, pixels, parameters and stamp."""
    loader = _stamped(sample_data)
    assert len(loader) == 12
    head = []
    for batch in loader:
        head.append(batch)
        if len(head) == stop:
            break
    _same_rows(_rows(head), reference_epochs[0][:stop])
    if set_epoch:
        loader.set_epoch(1)
    again = _rows(loader)
    assert len(again) == 12 and {r[0] for r in again} == {1}
    assert sorted(i for r in again for i in r[1]) == list(range(60))
    _same_rows(again, reference_epochs[1])
    assert loader.epoch == 2


def test_raw_then_iterate_gives_a_whole_epoch(
    sample_data: dict[str, Path], reference_epochs: list
) -> None:
    loader = _stamped(sample_data)
    for _ in zip(range(3), loader.raw(), strict=False):
        pass
    _same_rows(_rows(loader), reference_epochs[1])


def test_nested_iteration_is_an_error(sample_data: dict[str, Path]) -> None:
    """Regression: a nested ``for`` gave 6 + 4 batches where len is 5. A second open iteration
    is refused; the first one goes on and still yields its whole epoch."""
    loader = create_loader(
        sample_data["val"], batch_size=6, train=False, device="cpu", image_size=16
    )
    assert len(loader) == 5
    outer = []
    for batch in loader:
        outer.append(batch)
        if len(outer) == 1:
            with pytest.raises(RuntimeError, match="already being iterated.*nested loops"):
                for _ in loader:
                    pass
            with pytest.raises(RuntimeError, match="set_epoch: .*already being iterated"):
                loader.set_epoch(1)
    assert len(outer) == 5 and sorted(i for b in outer for i in b.index.tolist()) == list(range(30))
    it = iter(loader)  # an iterator held but not started is open too
    with pytest.raises(RuntimeError, match="already being iterated"):
        iter(loader)
    del it
    assert sum(1 for _ in loader) == 5


def test_state_after_break_resumes_the_rest_of_the_epoch(sample_data: dict[str, Path]) -> None:
    """Leaving a loop early and saving the state (a step limit, a preemption) keeps the rest
    of the epoch for the restored loader, while this loader itself moves on to epoch 1."""
    loader = _stamped(sample_data)
    reference = _rows(_stamped(sample_data))
    head = []
    for batch in loader:
        head.append(batch)
        if len(head) == 4:
            break
    state = loader.state_dict()
    restored = _stamped(sample_data, resume=state)
    _same_rows(_rows(head) + _rows(restored), reference)
    assert {r[0] for r in _rows(loader)} == {1}


def test_uneven_shards_yield_no_empty_batch(sample_data: dict[str, Path]) -> None:
    """60 files on 7 ranks in batches of 4 (global batch 28): the last global batch holds 4
    files, one each for ranks 0–3, none for ranks 4–6, which yield one batch fewer; ``len``
    counts what each yields and every file is seen exactly once."""
    seen = []
    for rank in range(7):
        loader = create_loader(
            sample_data["train"],
            batch_size=4,
            train=False,
            device="cpu",
            image_size=16,
            shard_id=rank,
            num_shards=7,
        )
        batches = list(loader)
        sizes = [len(b) for b in batches]
        assert sizes == ([4, 4, 1] if rank < 4 else [4, 4]) and len(sizes) == len(loader)
        seen += [i for b in batches for i in b.index.tolist()]
    assert sorted(seen) == list(range(60))
