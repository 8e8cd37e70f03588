"""Issue 20, elastic runs: the Keep stage gives a file the same draws at any world size.

The real DALI loader on the CPU reads epoch 0 on one rank (batch 8) and on two ranks (batch 4
each, two loaders in this process); a KeepStage with the same model weights and seed runs on
every batch. Per file index, the boxes (cutout, paste, cutmix), KeepCutMix's λ and the kept
GridMask candidate (its period, ratio, angle and shifts) are equal across the world sizes,
while a different Keep seed or epoch changes them.

Exact comparison: the images of a file are bitwise equal at both world sizes (the loader's
crop, under ``invariant_crop``, and flip are keyed by global position, asserted here), and
the saliency of the tiny eval-mode CPU model is computed per sample, so it is bitwise equal
too (asserted before the boxes, so a mismatch names its cause); the Keep draws are then pure
functions of the quantized saliency and the keys.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dali_gridaug.augment import GridMask
from dali_gridaug.loader import create_loader
from dali_gridaug.saliency import KeepStage
from tests.helpers import INVARIANT_CROP, make_batch, random_images, tiny_model

K = 10  # classes of the sample_data fixture
SIZE = 32
GLOBAL = 8
LOADER_SEED = 3
FIELDS = ("tile", "ratio", "angle", "shift_x", "shift_y")


def stage(method: str, seed: int) -> KeepStage:
    return KeepStage(
        tiny_model(K),  # the same weights every time (seeded)
        method,
        length=8,
        seed=seed,
        gridmask=GridMask(d=(8, 24)),
        draws=6,
    )


def loaders(root: Path, world: int, paste: bool) -> list:
    kw: dict = {"keep_clean": True, "auto_augment": "rand_augment"} if paste else {}
    kw["preset"] = INVARIANT_CROP
    return [
        create_loader(
            root,
            batch_size=GLOBAL // world,
            device="cpu",
            image_size=SIZE,
            seed=LOADER_SEED,
            shard_id=rank,
            num_shards=world,
            num_threads=2,
            **kw,
        )
        for rank in range(world)
    ]


def keep_by_file(root: Path, world: int, method: str, seed: int = 0, epoch: int = 0) -> dict:
    """``{file index: what the Keep stage decided for it}`` over epoch 0 of every rank;
    ``epoch`` overrides only the batch's epoch (the same images, other keys)."""
    keep = stage(method, seed)
    out: dict[int, dict[str, object]] = {}
    for loader in loaders(root, world, method == "paste"):
        for batch in loader:
            assert batch.position.shape == (len(batch),)
            params = keep.sample_params(batch.replace(epoch=epoch))
            picked = params.grid.pick(params.draw) if params.grid is not None else None
            view = batch.clean if method == "paste" else batch.images
            for b, index in enumerate(batch.index.tolist()):
                row = {
                    "position": int(batch.position[b]),
                    "view": view[b],
                    "saliency": params.saliency[b],
                    "boxes": params.boxes[b].tolist(),
                    "lam": float(params.lam[b]),
                }
                if picked is not None:
                    row["draw"] = [float(getattr(picked, f)[b, 0]) for f in FIELDS]
                out[index] = row
    return out


@pytest.mark.parametrize("method", ["cutout", "gridmask", "paste", "cutmix"])
def test_keep_draws_of_a_file_are_the_same_on_one_and_two_ranks(
    sample_data: dict[str, Path], method: str
) -> None:
    one = keep_by_file(sample_data["train"], 1, method)
    two = keep_by_file(sample_data["train"], 2, method)
    assert len(one) == 56 and set(one) == set(two)  # 60 files, drop_last: 7 global batches
    for index, a in one.items():
        b = two[index]
        assert a["position"] == b["position"], index
        assert torch.equal(a["view"], b["view"]), index  # the loader is invariant
        assert torch.equal(a["saliency"], b["saliency"]), index  # so is the saliency
        assert a["boxes"] == b["boxes"], (index, a["boxes"], b["boxes"])
        assert a["lam"] == b["lam"], index  # KeepCutMix λ is per sample, keyed too
        assert a.get("draw") == b.get("draw"), index
    if method == "gridmask":
        assert all(a["boxes"] == [0, 0, SIZE, SIZE] for a in one.values())
        assert len({tuple(a["draw"]) for a in one.values()}) > 40  # real, varied draws
    else:
        assert len({tuple(a["boxes"]) for a in one.values()}) > 20


@pytest.mark.parametrize("method", ["cutout", "gridmask", "paste"])
@pytest.mark.parametrize("change", ["seed", "epoch"])
def test_another_seed_or_epoch_changes_the_draws(
    sample_data: dict[str, Path], method: str, change: str
) -> None:
    base = keep_by_file(sample_data["train"], 2, method)
    other = keep_by_file(sample_data["train"], 2, method, **{change: 1})
    key = "draw" if method == "gridmask" else "boxes"
    changed = sum(base[i][key] != other[i][key] for i in base)
    for i in base:  # the same images and saliency: only the keys differ
        assert torch.equal(base[i]["saliency"], other[i]["saliency"])
    assert changed > len(base) // 2, (changed, len(base))


def test_cutmix_partners_stay_in_the_rank_batch(sample_data: dict[str, Path]) -> None:
    """The batch-level draw: partners come from the rank's own batch (an argsort of its
    samples' keyed uniforms), a permutation of it."""
    keep = stage("cutmix", 0)
    for loader in loaders(sample_data["train"], 2, paste=False):
        for batch in loader:
            partner = keep.sample_params(batch).partner
            assert sorted(partner.tolist()) == list(range(len(batch)))


def test_the_trainer_keys_its_keep_stage_by_the_run_seed() -> None:
    """A resume (at any world size) rebuilds the same stage: its only random input is the run
    seed, so no generator state is saved or reseeded."""
    from dali_gridaug.recipes import load_recipe
    from dali_gridaug.training.config import RunConfig
    from dali_gridaug.training.dist import DistEnv
    from dali_gridaug.training.parts import build_parts

    recipe = load_recipe("imagenet_keepcutmix").override({"model.name": "resnet18"})
    env = DistEnv(0, 1, 0, 1, torch.device("cpu"))  # one process: no DDP wrapper
    parts = build_parts(RunConfig(train="unused", seed=7), recipe, env, K, steps_per_epoch=5)
    assert isinstance(parts.keep, KeepStage) and parts.keep.seed == 7
    assert parts.keep.method == recipe.keep.method


def test_a_hand_built_batch_uses_positions_arange_b() -> None:
    batch = make_batch(random_images(3, 8))
    keep = stage("cutout", 5)
    assert batch.position.numel() == 0
    same = keep.sample_params(batch.replace(position=torch.arange(8)))
    assert torch.equal(keep.sample_params(batch).boxes, same.boxes)
    shifted = keep.sample_params(batch.replace(position=torch.arange(8) + 8))
    assert not torch.equal(shifted.boxes, same.boxes)
    with pytest.raises(ValueError, match=r"`batch.position` must be empty or of shape \(8,\)"):
        keep.sample_params(batch.replace(position=torch.arange(3)))
