"""A ``DaliLoader`` has every public attribute of a ``torch.utils.data.DataLoader``, with
truthful values, and its ``batch_sampler`` answers like a ``BatchSampler`` (real DALI CPU)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from torch.utils.data import DataLoader

from dali_gridaug import create_loader
from dali_gridaug.constants import PREFETCH
from dali_gridaug.views import ShardBatchSampler, ShardSampler

#: DataLoader attributes a DaliLoader may lack, with the reason (none: every one is there).
EXEMPT: dict[str, str] = {}


def _dataloader_attributes() -> set[str]:
    """Every public name of a constructed DataLoader: instance attributes, properties and
    methods of the class (``dir`` of an instance covers all three)."""
    loader = DataLoader(list(range(10)), batch_size=2)
    names = {n for n in dir(loader) if not n.startswith("_")}
    props = {n for n, v in inspect.getmembers(DataLoader) if isinstance(v, property)}
    return names | {n for n in props if not n.startswith("_")}


def test_every_dataloader_attribute_exists(sample_data: dict[str, Path]) -> None:
    wanted = _dataloader_attributes()
    # the list, so a torch that renamed one still fails here
    assert {
        "batch_sampler",
        "num_workers",
        "drop_last",
        "pin_memory",
        "collate_fn",
        "persistent_workers",
        "prefetch_factor",
        "generator",
        "worker_init_fn",
        "timeout",
        "multiprocessing_context",
        "pin_memory_device",
        "in_order",
        "batch_size",
        "sampler",
        "dataset",
    } <= wanted
    for train in (True, False):
        loader = create_loader(
            sample_data["val"],
            batch_size=4,
            train=train,
            device="cpu",
            image_size=16,
            num_threads=2,
        )
        missing = {n for n in wanted - set(EXEMPT) if not hasattr(loader, n)}
        assert not missing, f"DaliLoader lacks DataLoader attributes {sorted(missing)}"
        assert len(loader) == sum(1 for _ in loader)


def test_dataloader_attribute_values(sample_data: dict[str, Path]) -> None:
    loader = create_loader(
        sample_data["train"], batch_size=8, device="cpu", image_size=16, num_threads=3
    )
    assert loader.num_workers == 3  # DALI threads (no worker processes)
    assert loader.prefetch_factor == PREFETCH == loader.pipe.prefetch_queue_depth
    assert loader.drop_last is True and loader.batch_size == 8
    assert loader.pin_memory is False and loader.pin_memory_device == ""
    assert loader.persistent_workers is False and loader.in_order is True
    assert loader.timeout == 0
    assert loader.collate_fn is None and loader.generator is None
    assert loader.worker_init_fn is None and loader.multiprocessing_context is None
    assert loader.check_worker_number_rationality() is None
    val = create_loader(
        sample_data["val"], batch_size=4, train=False, device="cpu", image_size=16, num_threads=0
    )
    assert val.drop_last is False and val.num_workers == val.spec.num_threads >= 1


def test_batch_sampler_like_a_batch_sampler(sample_data: dict[str, Path]) -> None:
    """timm's ``set_epoch`` helper reads ``loader.batch_sampler``; ``_RepeatSampler`` unwraps
    ``.sampler`` and reads its ``epoch``."""
    loader = create_loader(
        sample_data["train"], batch_size=8, device="cpu", image_size=16, num_threads=2
    )
    bs = loader.batch_sampler
    assert isinstance(bs, ShardBatchSampler) and isinstance(bs.sampler, ShardSampler)
    assert bs.batch_size == 8 and bs.drop_last is True
    assert len(bs) == len(loader) == 60 // 8
    bs.set_epoch(2)
    assert loader.epoch == 2 == bs.epoch == bs.sampler.epoch
    bs.sampler.set_epoch(3)
    assert loader.epoch == 3
    assert {b.epoch for b in loader} == {3}
    with pytest.raises(TypeError, match="batch_sampler has no indices to iterate"):
        iter(bs)
    val = create_loader(
        sample_data["val"], batch_size=4, train=False, device="cpu", image_size=16, num_threads=2
    )
    assert len(val.batch_sampler) == len(val) == 8 and val.batch_sampler.drop_last is False
    # a DataLoader's invariant: len(loader) == len(loader.batch_sampler)
    ref = DataLoader(list(range(30)), batch_size=4)
    assert len(ref) == len(ref.batch_sampler) == len(val.batch_sampler)


def test_batch_sampler_view_holds_no_cycle(sample_data: dict[str, Path]) -> None:
    """Like ``sampler``, ``batch_sampler`` is a fresh view: the loader is freed when dropped."""
    import gc
    import weakref

    loader = create_loader(
        sample_data["val"], batch_size=4, train=False, device="cpu", image_size=16, num_threads=2
    )
    assert loader.batch_sampler is not loader.batch_sampler
    ref = weakref.ref(loader)
    del loader
    gc.collect()
    assert ref() is None
