"""``LoaderConfig``: the loader's options spelled once. Its construction runs the checks
``create_loader`` runs (the same messages), ``create_loader(source, config)`` builds the same
loader as the keywords, options beside a config replace its fields, ``evaluation()`` is the
matching validation config, and ``resolve`` is the one home of what needs the source.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from dali_gridaug.augment import CutMix, GridMask
from dali_gridaug.config import FIELDS, TRAIN_ONLY, LoaderConfig, resolve
from dali_gridaug.loader import create_loader
from dali_gridaug.presets import CIFAR, CIFAR_MEAN

BAD = [
    ({"batch_size": 0}, ValueError, r"`batch_size` must be in \[1, inf\), got 0"),
    ({"device": "tpu"}, ValueError, r"`device` must be one of"),
    ({"hflip": 1.5}, ValueError, r"`hflip` must be in \[0, 1\], got 1.5"),
    ({"std": (1.0, 0.0, 1.0)}, ValueError, r"`std` must be positive"),
    ({"image_size": "big"}, TypeError, r"`image_size` must be an int or an \(H, W\) pair"),
    ({"train": False, "augment": [GridMask()]}, ValueError, r"`augment` is for training"),
    ({"shard_id": 2, "num_shards": 2}, ValueError, r"`shard_id` must be in \[0, 1\]"),
    ({"aug_repeats": 3, "train": False}, ValueError, r"`aug_repeats`=3 is for training"),
    ({"interpolation": "lanczos"}, ValueError, r"`interpolation` must be one of"),
    ({"invariant_crop": 1}, TypeError, r"`invariant_crop` must be"),
    ({"num_classes": 0}, ValueError, r"`num_classes` must be in \[1, inf\), got 0"),
]


@pytest.mark.parametrize(("options", "error", "match"), BAD, ids=lambda v: str(v)[:40])
def test_config_checks_at_construction_as_create_loader_does(
    small: Path, options: dict, error: type, match: str
) -> None:
    options = {"batch_size": 4, **options}
    with pytest.raises(error, match=match):
        LoaderConfig(**options)
    with pytest.raises(error, match=match):
        create_loader(small, **options)


def test_replace_checks_again() -> None:
    config = LoaderConfig(batch_size=4)
    with pytest.raises(ValueError, match=r"`vflip` must be in \[0, 1\], got -1"):
        dataclasses.replace(config, vflip=-1)


def test_checked_values_are_python_scalars() -> None:
    config = LoaderConfig(batch_size=np.int64(8), seed=np.uint16(3), hflip=np.float32(0.25))
    assert (type(config.batch_size), type(config.seed), type(config.hflip)) == (int, int, float)
    assert config.augment == () and isinstance(config.exclude, tuple)


def test_a_config_and_keywords_build_the_same_loader(small: Path) -> None:
    options = dict(batch_size=4, image_size=32, device="cpu", num_threads=1, seed=5)
    options |= dict(augment=[CutMix(alpha=1.0)], label_smoothing=0.1)
    by_keywords = create_loader(small, **options)
    by_config = create_loader(small, LoaderConfig(**options))
    assert by_config.spec == by_keywords.spec
    a, b = next(iter(by_keywords)), next(iter(by_config))
    torch.testing.assert_close(a.images, b.images, rtol=0, atol=0)
    torch.testing.assert_close(a.target, b.target, rtol=0, atol=0)


def test_options_beside_a_config_replace_its_fields(small: Path) -> None:
    config = LoaderConfig(batch_size=4, image_size=32, device="cpu", num_threads=1)
    loader = create_loader(small, config, seed=7, batch_size=2)
    assert (loader.spec.seed, loader.batch_size, config.seed) == (7, 2, 0)


def test_unknown_or_missing_options_fail_like_a_signature(small: Path) -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'batchsize'"):
        create_loader(small, batchsize=4)
    with pytest.raises(TypeError, match="missing 1 required keyword-only argument: 'batch_size'"):
        create_loader(small)
    with pytest.raises(TypeError, match=re.escape("`config` must be")):
        create_loader(small, {"batch_size": 4})


def test_evaluation_keeps_the_geometry_and_drops_training_options() -> None:
    train = LoaderConfig(
        batch_size=8,
        image_size=48,
        preset="imagenet",
        mean=0.0,
        std=1.0,
        seed=3,
        augment=[GridMask(d=(8, 24))],
        auto_augment="rand_augment",
        color_jitter=0.4,
        hflip=0.2,
        label_smoothing=0.1,
        aug_repeats=3,
        drop_last=True,
        interpolation="bicubic",
    )
    val = train.evaluation(batch_size=16)
    assert not val.train and val.batch_size == 16
    assert all(getattr(val, name) == FIELDS[name].default for name in TRAIN_ONLY)
    kept = ("image_size", "preset", "mean", "std", "seed", "interpolation", "device")
    assert all(getattr(val, name) == getattr(train, name) for name in kept)


def test_the_final_preset_holds_size_mean_and_std() -> None:
    pre = LoaderConfig(batch_size=4, preset="cifar").final_preset()
    assert (pre.size, pre.mean, pre.std) == ((32, 32), CIFAR_MEAN, CIFAR.std)
    pre = LoaderConfig(
        batch_size=4, image_size=(40, 24), mean=0, invariant_crop=True
    ).final_preset()
    assert (pre.size, pre.mean, pre.invariant_crop) == ((40, 24), (0.0,) * 3, True)


def test_resolve_is_the_home_of_what_needs_the_source(small: Path) -> None:
    config = LoaderConfig(batch_size=8, num_shards=2, shard_id=1, device="cpu", drop_last=False)
    spec = resolve(config, small)
    assert (spec.batch_size, spec.dali_batch, spec.drop_last) == (8, 6, False)  # 12 files / 2
    assert spec.num_classes == 3 and (spec.shard_id, spec.num_shards) == (1, 2)
    with pytest.raises(ValueError, match=r"`batch_size`=8 is larger than this rank's shard of 6"):
        resolve(LoaderConfig(batch_size=8, num_shards=2, shard_id=0), small)  # train: drop_last
    with pytest.raises(ValueError, match=r"`num_classes`=2 is smaller than the dataset's 3"):
        resolve(LoaderConfig(batch_size=4, num_classes=2), small)
