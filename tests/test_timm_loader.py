"""timm's data recipe through :func:`dali_gridaug.timm_loader.timm_loader`: the mapping holds
the same parameters as timm's own transforms, ``RandomErasing`` and ``FastCollateMixup`` built
from the same ``args``; the loaders run on the CPU with the targets timm's losses expect;
refused options are one-line errors naming them; and every data option of a supplied timm
``train.py`` parser is mapped or refused by name (skipped without the file, see
``tests/test_timm_train.py``)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest
import torch

from dali_gridaug import DaliLoader
from dali_gridaug.augment import MixupCutMix, RandomErasing
from dali_gridaug.errors import UsageError
from dali_gridaug.timm_loader import (
    DATA_EXTRAS,
    DATA_GROUPS,
    DATA_PREFIXES,
    NEUTRAL,
    TIMM_OPTIONS,
    check_refused,
    loader_options,
    timm_loader,
)
from tests.timm_train import timm_train_module

timm = pytest.importorskip("timm")

#: timm train.py's defaults for its data options (timm 1.0.x), plus a small CPU run's values.
DEFAULTS = dict(
    data=None,
    data_dir=None,
    dataset="",
    train_split="train",
    val_split="validation",
    train_num_samples=None,
    val_num_samples=None,
    dataset_download=False,
    class_map="",
    input_img_mode=None,
    input_key=None,
    target_key=None,
    dataset_trust_remote_code=False,
    num_classes=10,
    img_size=None,
    in_chans=None,
    input_size=None,
    crop_pct=None,
    mean=None,
    std=None,
    interpolation="",
    batch_size=8,
    validation_batch_size=None,
    device="cpu",
    model_dtype=None,
    no_aug=False,
    train_crop_mode=None,
    scale=[0.08, 1.0],
    ratio=[3 / 4, 4 / 3],
    hflip=0.5,
    vflip=0.0,
    color_jitter=0.4,
    color_jitter_prob=None,
    grayscale_prob=None,
    gaussian_blur_prob=None,
    aa=None,
    aug_repeats=0,
    aug_splits=0,
    jsd_loss=False,
    bce_loss=False,
    reprob=0.0,
    remode="pixel",
    recount=1,
    resplit=False,
    mixup=0.0,
    cutmix=0.0,
    cutmix_minmax=None,
    mixup_prob=1.0,
    mixup_switch_prob=0.5,
    mixup_mode="batch",
    mixup_off_epoch=0,
    smoothing=0.1,
    train_interpolation="random",
    seed=42,
    workers=1,
    distributed=False,
    naflex_loader=False,
    train_img_sizes=None,
    train_batch_sizes=None,
    train_size_probs=None,
    train_size_schedule="constant",
    train_batches_per_epoch=None,
    epoch_repeats=0.0,
)
DATA_CONFIG = dict(
    input_size=(3, 32, 32),
    interpolation="bicubic",
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
    crop_pct=0.875,
    crop_mode="center",
)


def _args(**kw: object) -> argparse.Namespace:
    return argparse.Namespace(**{**DEFAULTS, **kw})


def _augments(options: dict) -> dict[type, object]:
    return {type(a): a for a in options.get("augment", [])}


def test_erasing_and_mixing_hold_timms_own_parameters() -> None:
    """Our RandomErasing / MixupCutMix carry what timm's PrefetchLoader and FastCollateMixup
    hold for the same args."""
    from timm.data import FastCollateMixup
    from timm.data.random_erasing import RandomErasing as TimmErasing

    args = _args(
        reprob=0.25,
        remode="rand",
        recount=3,
        resplit=True,
        mixup=0.8,
        cutmix=1.0,
        mixup_prob=0.7,
        mixup_switch_prob=0.4,
        mixup_mode="elem",
        smoothing=0.2,
    )
    augs = _augments(loader_options(args, DATA_CONFIG, is_training=True))
    ours_re, ours_mix = augs[RandomErasing], augs[MixupCutMix]
    theirs = TimmErasing(probability=0.25, mode="rand", max_count=3, num_splits=2, device="cpu")
    assert ours_re.p == theirs.probability and ours_re.mode == theirs.mode
    assert ours_re.count == (theirs.min_count, theirs.max_count) and ours_re.num_splits == 2
    assert ours_re.scale == pytest.approx((theirs.min_area, theirs.max_area))
    lo, hi = (math.exp(v) for v in theirs.log_aspect_ratio)
    assert ours_re.ratio == pytest.approx((lo, hi))
    mix = FastCollateMixup(
        mixup_alpha=0.8,
        cutmix_alpha=1.0,
        prob=0.7,
        switch_prob=0.4,
        mode="elem",
        label_smoothing=0.2,
        num_classes=10,
    )
    assert (ours_mix.mixup_alpha, ours_mix.cutmix_alpha) == (mix.mixup_alpha, mix.cutmix_alpha)
    assert (ours_mix.prob, ours_mix.switch_prob) == (mix.mix_prob, mix.switch_prob)
    assert (ours_mix.mode, ours_mix.label_smoothing) == (mix.mode, mix.label_smoothing)
    assert ours_mix.correct_lam == mix.correct_lam
    # timm's defaults: no erasing, no mixing
    assert _augments(loader_options(_args(), DATA_CONFIG, is_training=True)) == {}


def test_transforms_hold_timms_own_parameters() -> None:
    """Crop, flips, jitter and interpolation as timm's ``create_transform`` builds them."""
    from timm.data import create_transform
    from torchvision import transforms as T

    args = _args(
        scale=[0.3, 0.9],
        ratio=[0.5, 2.0],
        hflip=0.3,
        vflip=0.2,
        color_jitter=0.3,
        color_jitter_prob=0.6,
        train_interpolation="bilinear",
    )
    ours = loader_options(args, DATA_CONFIG, is_training=True)
    tf = create_transform(
        32,
        is_training=True,
        scale=args.scale,
        ratio=args.ratio,
        hflip=0.3,
        vflip=0.2,
        color_jitter=0.3,
        color_jitter_prob=0.6,
        interpolation="bilinear",
    )
    parts = {type(t).__name__: t for t in tf.transforms}
    rrc = parts["RandomResizedCropAndInterpolation"]
    assert ours["preset"].scale == pytest.approx(rrc.scale)
    assert ours["preset"].ratio == pytest.approx(rrc.ratio)
    assert ours["hflip"] == parts["RandomHorizontalFlip"].p
    assert ours["vflip"] == parts["RandomVerticalFlip"].p
    assert ours["interpolation"] == "bilinear"
    jitter = parts["RandomApply"]
    assert (
        isinstance(jitter.transforms[0], T.ColorJitter)
        and ours["preset"].color_jitter.p == jitter.p
    )
    cj = jitter.transforms[0]
    assert ours["preset"].color_jitter.brightness == pytest.approx(cj.brightness[1] - 1)
    # an --aa policy switches the jitter off, as timm does (and its magnitude noise is
    # a written-down difference)
    with pytest.warns(UserWarning, match="mstd0.5"):
        aa = loader_options(_args(aa="rand-m9-mstd0.5-inc1"), DATA_CONFIG, is_training=True)
    assert aa["preset"].color_jitter is None and aa["auto_augment"] is not None
    # eval: crop_pct and interpolation from data_config, no augmentation
    val = loader_options(_args(validation_batch_size=5), DATA_CONFIG, is_training=False)
    assert val["batch_size"] == 5 and val["preset"].crop_pct == 0.875
    assert val["interpolation"] == "bicubic" and "augment" not in val
    assert val["mean"] == pytest.approx((0.485 * 255, 0.456 * 255, 0.406 * 255))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("aug_splits", 3),
        ("naflex_loader", True),
        ("grayscale_prob", 0.2),
        ("gaussian_blur_prob", 0.1),
        ("no_aug", True),
        ("train_img_sizes", [160, 224]),
        ("jsd_loss", True),
        ("train_num_samples", 1000),
    ],
)
def test_refused_options_name_themselves(name: str, value: object) -> None:
    flag = "--" + name.replace("_", "-")
    with pytest.raises(UsageError, match=f"timm option {flag}="):
        loader_options(_args(**{name: value}), DATA_CONFIG, is_training=True)


def test_values_without_an_equivalent_are_refused() -> None:
    with pytest.raises(UsageError, match="--train-crop-mode='rkrr'"):
        loader_options(_args(train_crop_mode="rkrr"), DATA_CONFIG, is_training=True)
    with pytest.raises(UsageError, match="hue"):
        loader_options(_args(color_jitter=[0.4, 0.4, 0.4, 0.1]), DATA_CONFIG, is_training=True)
    with pytest.raises(UsageError, match="--model-dtype='bfloat16'"):
        loader_options(_args(model_dtype="bfloat16"), DATA_CONFIG, is_training=True)
    with pytest.raises(UsageError, match="augmix|AugMix"):
        loader_options(_args(aa="augmix-m5-w4-d2"), DATA_CONFIG, is_training=True)
    with pytest.raises(UsageError, match="not an image folder"):
        timm_loader(object(), _args(), DATA_CONFIG, is_training=True)


def test_every_refused_option_has_a_neutral_value() -> None:
    refused = {k for k, v in TIMM_OPTIONS.items() if v not in ("loader", "timm")}
    assert refused == set(NEUTRAL)
    check_refused(_args())  # timm's defaults pass


@pytest.fixture(scope="module")
def timm_folder(sample_data: dict[str, Path]) -> dict[str, object]:
    """timm's own datasets (ReaderImageFolder) over the sample ImageFolder."""
    from timm.data import create_dataset

    return {
        split: create_dataset("", root=str(sample_data[split]), is_training=split == "train")
        for split in ("train", "val")
    }


def test_loaders_from_timms_datasets(timm_folder: dict[str, object]) -> None:
    """Train with CutMix/Mixup + RE: soft targets with smoothing inside, timm's class order;
    without mixing: hard labels (timm's LabelSmoothingCrossEntropy smooths); eval: every val
    image once, in timm's order of samples."""
    train = timm_folder["train"]
    args = _args(mixup=0.8, cutmix=1.0, reprob=0.25, smoothing=0.1)
    loader = timm_loader(train, args, DATA_CONFIG, is_training=True)
    assert isinstance(loader, DaliLoader) and loader.mixup_enabled
    assert len(loader) == len(train) // 8
    images, target = next(iter(loader))
    assert images.shape == (8, 3, 32, 32) and target.shape == (8, 10)
    assert torch.allclose(target.sum(1), torch.ones(8)) and target.min() >= 0.1 / 10 - 1e-6
    paths = [p for p, _ in train.reader.samples]
    assert list(loader.source.files) == [str(Path(p).resolve()) for p in paths]
    assert list(loader.source.targets) == [t for _, t in train.reader.samples]

    plain = timm_loader(train, _args(), DATA_CONFIG, is_training=True)
    _, target = next(iter(plain))
    assert target.dtype == torch.int64 and target.shape == (8,)

    val = timm_loader(timm_folder["val"], _args(), DATA_CONFIG, is_training=False)
    seen = torch.cat([b.index for b in val]).tolist()
    assert seen == list(range(len(timm_folder["val"])))


def test_parser_data_options_are_mapped_or_refused() -> None:
    """Every option of the supplied train.py's data groups (and its data options elsewhere)
    is in TIMM_OPTIONS, and its defaults pass the refusal check."""
    module = timm_train_module()
    parser = module.parser
    names = set()
    for group in parser._action_groups:
        for action in group._group_actions:
            dest = action.dest
            if group.title in DATA_GROUPS or dest.startswith(DATA_PREFIXES) or dest in DATA_EXTRAS:
                names.add(dest)
    assert names, "no data options found in the supplied train.py parser"
    missing = sorted(names - set(TIMM_OPTIONS))
    assert not missing, f"timm options neither mapped nor refused: {missing}"
    defaults = parser.parse_args([])
    check_refused(defaults)
