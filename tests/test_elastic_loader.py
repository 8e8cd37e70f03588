"""The loader at different world sizes, without the trainer: the same file gets the same
host-drawn parameters (flip, crop window, GridMask/Cutout/RandomErasing) at W=1 and W=2 for
the same global batch; a state taken at W=2 and loaded at W=3 covers the rest of the epoch
exactly once; repeated augmentation spreads copies over ranks as timm's RepeatAugSampler."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dali_gridaug import CutMix, Cutout, GridMask, RandomErasing, create_loader
from dali_gridaug.order import epoch_order, repeat_order
from tests.helpers import INVARIANT_CROP

GLOBAL = 12  # divided by 1, 2, 3 and 4 ranks; 60 files = 5 global batches
AUGS = [GridMask(d=(8, 16), p=0.5, ramp_epochs=0), Cutout(length=6, p=0.5), RandomErasing(p=0.5)]


def _ranks(root: Path, world: int, **kw: object) -> list:
    return [
        create_loader(
            root,
            batch_size=GLOBAL // world,
            device="cpu",
            image_size=24,
            num_threads=1,
            seed=7,
            shard_id=r,
            num_shards=world,
            **kw,
        )
        for r in range(world)
    ]


def _draws(
    root: Path, world: int, epoch: int, augment: list, preset: object = INVARIANT_CROP
) -> dict[int, dict[str, np.ndarray]]:
    """file index → every per-sample parameter output (flip, crop, the augmentations')."""
    found: dict[int, dict[str, np.ndarray]] = {}
    for loader in _ranks(root, world, augment=augment, preset=preset):
        loader.set_epoch(epoch)
        for out in loader.raw():
            index = out["key"].view(-1).tolist()
            names = [k for k in out if k not in ("images", "key", "clean", "epoch")]
            for row, i in enumerate(index):
                assert i not in found, f"file {i} read twice at W={world}"
                found[i] = {k: out[k][row].numpy().copy() for k in names}
    return found


@pytest.mark.parametrize("epoch", [0, 3])
def test_a_file_gets_the_same_draws_at_one_and_two_ranks(
    sample_data: dict[str, Path], epoch: int
) -> None:
    one = _draws(sample_data["train"], 1, epoch, AUGS)
    two = _draws(sample_data["train"], 2, epoch, AUGS)
    assert sorted(one) == sorted(two) == list(range(60))
    keys = set(one[0])
    assert {"flip", "crop", "position"} <= keys and any(k.startswith("0.") for k in keys), keys
    for i in one:
        for k in keys:
            np.testing.assert_array_equal(one[i][k], two[i][k], err_msg=f"file {i}, {k}")
    # the draws are real draws: they differ between files and between epochs
    flips = np.array([one[i]["flip"] for i in range(60)]).ravel()
    assert 10 < flips.sum() < 50
    crops = {one[i]["crop"].tobytes() for i in one}
    assert len(crops) > 50
    other = _draws(sample_data["train"], 1, epoch + 1, AUGS)
    assert sum(not np.array_equal(one[i]["crop"], other[i]["crop"]) for i in one) > 50


def test_the_default_crop_is_dalis_own_draw(sample_data: dict[str, Path]) -> None:
    """Without ``invariant_crop`` DALI's decoder draws the window: no ``crop`` output and no
    host draws for it, while flip and the masks stay keyed by position (README's table)."""
    one = _draws(sample_data["train"], 1, 0, AUGS, preset="imagenet")
    two = _draws(sample_data["train"], 2, 0, AUGS, preset="imagenet")
    assert "crop" not in one[0] and "flip" in one[0]
    for i in one:
        for k in one[i]:
            np.testing.assert_array_equal(one[i][k], two[i][k], err_msg=f"file {i}, {k}")
    host = _draws(sample_data["train"], 1, 0, AUGS)
    for i in one:  # the rrc uniforms are not drawn: the other draws are the same numbers
        for k in one[i]:
            np.testing.assert_array_equal(one[i][k], host[i][k], err_msg=f"file {i}, {k}")


def test_mixing_draws_are_per_rank_batches(sample_data: dict[str, Path]) -> None:
    """CutMix's partners are in the rank's own batch: its draws are keyed by rank, so they are
    not expected to agree across W (README's table); its per-sample inputs still do."""
    one = _draws(sample_data["train"], 1, 0, [GridMask(d=(8, 16)), CutMix(p=1.0)])
    two = _draws(sample_data["train"], 2, 0, [GridMask(d=(8, 16)), CutMix(p=1.0)])
    for i in one:
        np.testing.assert_array_equal(one[i]["crop"], two[i]["crop"])
        for k in (k for k in one[i] if k.startswith("0.")):
            np.testing.assert_array_equal(one[i][k], two[i][k])


@pytest.mark.parametrize(("stop", "num_files"), [(1, 60), (2, 66)])
def test_state_at_two_ranks_continues_at_three_exactly_once(
    sample_data: dict[str, Path], tmp_path: Path, stop: int, num_files: int
) -> None:
    """``stop`` global steps at W=2, the state of rank 0 loaded at W=3: the union of the
    epoch's indices is every file once (66 files: the last 6 < one global batch are dropped)."""
    root = sample_data["train"]
    if num_files != 60:  # a list file with 6 files more than 5 global batches
        classes = sorted(d.name for d in root.iterdir() if d.is_dir())
        files = sorted(root.rglob("*.jpg"))
        lines = [f"{f} {classes.index(f.parent.name)}" for f in files + files[:6]]
        root = tmp_path / "list.txt"
        root.write_text("\n".join(lines) + "\n")
    first = _ranks(root, 2)
    seen = []
    for loader in first:
        it = iter(loader)
        seen += [next(it).index.tolist() for _ in range(stop)]
    states = [loader.state_dict() for loader in first]
    assert states[0] == states[1]
    assert states[0]["position"] == stop * GLOBAL and states[0]["epoch"] == 0
    assert set(states[0]) == {"epoch", "position", "seed", "num_samples", "source", "mixup_enabled"}
    rest = _ranks(root, 3, resume=states[0])
    for loader in rest:
        for batch in loader:
            assert batch.epoch == 0 and len(batch) == GLOBAL // 3
            seen.append(batch.index.tolist())
    ids = [i for b in seen for i in b]
    order = epoch_order(7, 0, num_files, shuffle=True)
    assert sorted(ids) == sorted(order[: num_files // GLOBAL * GLOBAL].tolist())
    assert len(ids) == len(set(ids)) == 60  # exactly once; only the dropped tail is missing
    for loader in rest:  # every new rank is at the next epoch, position 0
        assert (loader.state_dict()["epoch"], loader.state_dict()["position"]) == (1, 0)


@pytest.mark.parametrize("world", [2, 3, 4])
@pytest.mark.parametrize("n", [60, 600])
def test_repeat_order_is_repeat_aug_samplers(world: int, n: int) -> None:
    """Rank r's share of our repeated order is RepeatAugSampler's for the same permutation
    (shuffle=False hands it the identity; both small and ≥ 256-sample datasets)."""
    from timm.data.distributed_sampler import RepeatAugSampler

    order = repeat_order(np.arange(n), 3, world)
    for r in range(world):
        theirs = list(RepeatAugSampler(range(n), num_replicas=world, rank=r, shuffle=False))
        assert order[r::world].tolist() == theirs


def test_repeated_augmentation_through_the_loader(sample_data: dict[str, Path]) -> None:
    """aug_repeats=3 at W=3: each file's 3 copies are read by 3 different ranks."""
    by_rank = []
    for loader in _ranks(sample_data["train"], 3, aug_repeats=3, drop_last=False):
        by_rank.append(torch.cat([b.index for b in loader]).tolist())
    perm = epoch_order(7, 0, 60, shuffle=True)
    order = repeat_order(perm, 3, 3)
    assert [len(r) for r in by_rank] == [20, 20, 20]
    for r in range(3):
        assert by_rank[r] == order[r::3].tolist()
    copies = {i: [r for r in range(3) if i in by_rank[r]] for i in set(order.tolist())}
    assert all(len(ranks) == len(set(ranks)) for ranks in copies.values())
