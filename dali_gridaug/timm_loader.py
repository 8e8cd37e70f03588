"""timm's ``train.py`` data recipe as one DALI loader: :func:`timm_loader`.

timm's script builds its loaders from ``args`` (its parser) and ``data_config``
(``timm.data.resolve_data_config``). Swapping ours in is one import and the two loader
statements (``examples/README.md`` shows the diff)::

    from dali_gridaug.timm_loader import timm_loader
    loader_train = timm_loader(dataset_train, args, data_config, is_training=True)
    loader_eval = timm_loader(dataset_eval, args, data_config, is_training=False)

Every option timm's data argument groups hold is in :data:`TIMM_OPTIONS`: mapped onto
:func:`~dali_gridaug.loader.create_loader` (the recipe then runs in the DALI graph: crop,
flips, colour jitter or the ``--aa`` policy, RandomErasing, Mixup/CutMix and their label
smoothing, repeated augmentation, rank sharding), used by timm itself before the loader (its
dataset, model and loss), or refused. A refused option set to anything but its neutral value
is a one-line :class:`~dali_gridaug.errors.UsageError` naming it; nothing is ignored silently.

Targets follow timm's loss choice: with Mixup/CutMix active they are soft ``(B, K)`` float32
with ``--smoothing`` inside (timm then uses ``SoftTargetCrossEntropy``); without, they stay
hard int64 labels (timm smooths in ``LabelSmoothingCrossEntropy``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch

from dali_gridaug.augment import MixupCutMix, RandomErasing
from dali_gridaug.errors import UsageError
from dali_gridaug.loader import DaliLoader, create_loader
from dali_gridaug.policies import from_timm
from dali_gridaug.presets import ColorJitter, Preset
from dali_gridaug.reader import FileSource

#: How each option of timm's data argument groups is honoured: ``"loader"`` (mapped here),
#: ``"timm"`` (timm uses it itself: its dataset, model or loss, before or after the loader),
#: or the reason it is refused (an error when set; the neutral values are in :data:`NEUTRAL`).
TIMM_OPTIONS: dict[str, str] = {
    # dataset: timm builds the dataset; the loader reads its reader's files and targets
    "data": "timm",
    "data_dir": "timm",
    "dataset": "timm",
    "train_split": "timm",
    "val_split": "timm",
    "class_map": "timm",
    "input_key": "timm",
    "dataset_download": "timm",
    "dataset_trust_remote_code": "timm",
    "train_num_samples": "iterable (TFDS/WDS/HF streaming) datasets; the loader reads folders",
    "val_num_samples": "iterable (TFDS/WDS/HF streaming) datasets; the loader reads folders",
    "target_key": "iterable (TFDS/WDS/HF streaming) datasets; the loader reads folders",
    "input_img_mode": "non-RGB input modes; DALI decodes RGB",
    "epoch_repeats": "dataset epoch repeats; use --epochs",
    # size, normalization, interpolation (data_config resolves them)
    "input_size": "loader",
    "img_size": "loader",
    "crop_pct": "loader",
    "mean": "loader",
    "std": "loader",
    "interpolation": "loader",
    "train_interpolation": "loader",
    "in_chans": "loader",
    # geometry and colour
    "no_aug": "training without augmentation; drop the augmentation options instead",
    "train_crop_mode": "loader",
    "scale": "loader",
    "ratio": "loader",
    "hflip": "loader",
    "vflip": "loader",
    "color_jitter": "loader",
    "color_jitter_prob": "loader",
    "grayscale_prob": "random grayscale has no DALI graph op here",
    "gaussian_blur_prob": "random Gaussian blur has no DALI graph op here",
    "aa": "loader",
    # erasing and mixing
    "reprob": "loader",
    "remode": "loader",
    "recount": "loader",
    "resplit": "loader",
    "mixup": "loader",
    "cutmix": "loader",
    "cutmix_minmax": "loader",
    "mixup_prob": "loader",
    "mixup_switch_prob": "loader",
    "mixup_mode": "loader",
    "mixup_off_epoch": "timm",  # timm sets loader.mixup_enabled = False
    "smoothing": "loader",
    # sampling, ranks, workers
    "aug_repeats": "loader",
    "aug_splits": "AugMix/JSD augmentation splits (aug_splits) have no DALI equivalent",
    "jsd_loss": "the JSD loss needs aug_splits, which have no DALI equivalent",
    "batch_size": "loader",
    "validation_batch_size": "loader",
    "num_classes": "loader",
    "workers": "loader",
    "seed": "loader",
    "distributed": "loader",
    "device": "loader",
    "model_dtype": "loader",
    "worker_seeding": "timm",  # DataLoader worker seeding; DALI draws from --seed
    "pin_mem": "timm",  # pinning: DALI GPU batches are already on the device
    "no_prefetcher": "timm",  # timm's PrefetchLoader; the DALI loader is its own prefetcher
    "use_multi_epochs_loader": "timm",  # DataLoader worker respawn; DALI keeps its threads
    # the loss and model regularizers sit beside the data options in timm's groups
    "bce_loss": "timm",
    "bce_sum": "timm",
    "bce_target_thresh": "timm",
    "bce_pos_weight": "timm",
    "drop": "timm",
    "drop_connect": "timm",
    "drop_path": "timm",
    "drop_block": "timm",
    # resolution schedules and NaFlex
    "naflex_loader": "NaFlex (variable-resolution patch sequences) has no DALI equivalent",
    "train_img_sizes": "scheduled training resolutions have no DALI equivalent here",
    "train_batch_sizes": "scheduled training resolutions have no DALI equivalent here",
    "train_size_probs": "scheduled training resolutions have no DALI equivalent here",
    "train_size_schedule": "scheduled training resolutions have no DALI equivalent here",
    "train_batches_per_epoch": "a fixed number of batches per epoch; the loader reads epochs",
    # read by timm only together with an option refused above
    "train_size_schedule_spread": "timm",
    "train_size_random_mix": "timm",
    "variable_batch_loss_scale": "timm",
    "naflex_train_seq_lens": "timm",
    "naflex_max_seq_len": "timm",
    "naflex_patch_sizes": "timm",
    "naflex_patch_size_probs": "timm",
    "naflex_loss_scale": "timm",
    "naflex_patchify_channels_first": "timm",
}

#: The argument groups of timm's parser whose every option :data:`TIMM_OPTIONS` must name,
#: and the prefixes of the data options kept in its other groups.
DATA_GROUPS = ("Dataset parameters", "Augmentation and regularization parameters")
DATA_PREFIXES = ("train_size", "train_img", "train_batch", "naflex_", "variable_batch")
#: Data options of timm's other groups (model, device, misc).
DATA_EXTRAS = (
    "num_classes",
    "img_size",
    "in_chans",
    "input_size",
    "crop_pct",
    "mean",
    "std",
    "interpolation",
    "batch_size",
    "validation_batch_size",
    "device",
    "model_dtype",
    "seed",
    "worker_seeding",
    "workers",
    "pin_mem",
    "no_prefetcher",
    "use_multi_epochs_loader",
    "epoch_repeats",
    "data",
)

#: The value of each refused option that means "not used" (timm's defaults).
NEUTRAL: dict[str, tuple[Any, ...]] = {
    "train_num_samples": (None,),
    "val_num_samples": (None,),
    "target_key": (None, "label", "cls"),
    "input_img_mode": (None, "RGB"),
    "epoch_repeats": (0, 0.0, 1, 1.0),
    "no_aug": (False,),
    "grayscale_prob": (None, 0, 0.0),
    "gaussian_blur_prob": (None, 0, 0.0),
    "aug_splits": (0, 1),
    "jsd_loss": (False,),
    "naflex_loader": (False,),
    "train_img_sizes": (None,),
    "train_batch_sizes": (None,),
    "train_size_probs": (None,),
    "train_size_schedule": (None, "constant"),
    "train_batches_per_epoch": (None,),
}

_DEVICE = {"cuda": "gpu", "cpu": "cpu"}
_DTYPE = {None: torch.float32, "float32": torch.float32, "float16": torch.float16}


def check_refused(args: Any) -> None:
    """Raise for the first refused option of :data:`TIMM_OPTIONS` that ``args`` sets.

    Raises:
        UsageError: the option's name, its value and why it has no equivalent.
    """
    for name, how in TIMM_OPTIONS.items():
        if how in ("loader", "timm") or not hasattr(args, name):
            continue
        value = getattr(args, name)
        if value not in NEUTRAL[name]:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"timm option {flag}={value!r} is not supported: {how}")


def dataset_source(dataset: Any) -> FileSource | str | os.PathLike[str]:
    """The files and targets of timm's dataset (its ``ReaderImageFolder``, so timm's class
    order, ``--class-map`` and ``--input-key`` hold), or ``dataset`` itself when it is a
    path or one of this library's sources.

    Raises:
        UsageError: a timm dataset whose reader is not an image folder (tar, TFDS, WDS, HF).
    """
    if isinstance(dataset, (str, os.PathLike, FileSource)):
        return dataset
    reader = getattr(dataset, "reader", None)
    samples = getattr(reader, "samples", None)
    class_to_idx = getattr(reader, "class_to_idx", None)
    if samples is None or class_to_idx is None or not all(isinstance(s[0], str) for s in samples):
        kind = type(reader or dataset).__name__
        raise UsageError(
            f"dataset: {kind} is not an image folder; timm_loader reads timm's "
            "ReaderImageFolder datasets (or pass a folder, file list or tar shards)"
        )
    classes = [""] * (max(class_to_idx.values(), default=-1) + 1)
    for name, k in class_to_idx.items():
        classes[k] = name
    root = getattr(reader, "root", None)
    return FileSource(
        files=tuple(os.path.abspath(path) for path, _ in samples),
        targets=tuple(int(t) for _, t in samples),
        classes=tuple(classes),
        root=os.path.abspath(root) if root else None,
    )


def _pixels(values: Any) -> tuple[float, float, float]:
    """Timm's 0–1 mean/std to this library's 0–255 units."""
    return tuple(255.0 * float(v) for v in values)  # type: ignore[return-value]


def _device(args: Any) -> str:
    """Timm's ``--device`` (``cuda``, ``cuda:N``, ``cpu``) as the loader's device."""
    name = str(getattr(args, "device", "cuda")).split(":")[0]
    if name not in _DEVICE:
        raise UsageError(f"timm option --device={args.device!r}: the loader runs on cuda or cpu")
    return _DEVICE[name]


def _dtype(args: Any) -> torch.dtype:
    """Timm's ``--model-dtype`` (the image dtype timm's loader emits)."""
    name = getattr(args, "model_dtype", None)
    if name not in _DTYPE:
        raise UsageError(f"timm option --model-dtype={name!r}: the loader emits float32/float16")
    return _DTYPE[name]


def _mixing(args: Any) -> MixupCutMix | None:
    """Timm's ``mixup_args`` as one :class:`MixupCutMix`, or None when mixing is off."""
    cutmix_minmax = getattr(args, "cutmix_minmax", None)
    if not (args.mixup > 0 or args.cutmix > 0 or cutmix_minmax is not None):
        return None
    return MixupCutMix(
        mixup_alpha=float(args.mixup),
        cutmix_alpha=float(args.cutmix),
        cutmix_minmax=tuple(cutmix_minmax) if cutmix_minmax is not None else None,
        prob=float(args.mixup_prob),
        switch_prob=float(args.mixup_switch_prob),
        mode=args.mixup_mode,
        label_smoothing=float(args.smoothing),
    )


def _erasing(args: Any) -> RandomErasing | None:
    """Timm's ``re_*`` options; ``--resplit`` leaves the first half of each batch clean
    (timm's ``re_num_splits = num_aug_splits or 2``, and aug splits are refused).
    """
    if not args.reprob:
        return None
    return RandomErasing(
        p=float(args.reprob),
        mode=args.remode,
        count=(1, int(args.recount)),
        num_splits=2 if args.resplit else 0,
    )


def _jitter(args: Any) -> ColorJitter | None:
    """Timm's colour jitter: off under an ``--aa`` policy (except ``3a``), as timm does."""
    cj = getattr(args, "color_jitter", None)
    aa = getattr(args, "aa", None)
    if cj is None or (aa and "3a" not in aa):
        return None
    values = tuple(cj) if isinstance(cj, (list, tuple)) else (float(cj),) * 3
    if len(values) == 4 and values[3]:
        raise UsageError(f"timm option --color-jitter={cj!r}: hue jitter is not supported")
    prob = getattr(args, "color_jitter_prob", None)
    return ColorJitter(*values[:3], p=1.0 if prob is None else float(prob))


def loader_options(args: Any, data_config: Mapping[str, Any], *, is_training: bool) -> dict:
    """The :func:`~dali_gridaug.loader.create_loader` keywords for timm's ``args`` and
    ``data_config`` (all but the source): see :data:`TIMM_OPTIONS`.

    Raises:
        UsageError: a refused option is set, or a mapped one has a value with no equivalent.
    """
    check_refused(args)
    channels, height, width = (int(v) for v in data_config["input_size"])
    if channels != 3:
        raise UsageError(f"timm input_size {data_config['input_size']}: 3 channels only")
    mode = getattr(args, "train_crop_mode", None) or "rrc"
    if is_training and mode != "rrc":
        raise UsageError(f"timm option --train-crop-mode={mode!r}: only 'rrc' is supported")
    crop_mode = data_config.get("crop_mode", "center")
    options: dict[str, Any] = dict(
        train=is_training,
        image_size=(height, width),
        mean=_pixels(data_config["mean"]),
        std=_pixels(data_config["std"]),
        device=_device(args),
        dtype=_dtype(args),
        seed=int(getattr(args, "seed", 0) or 0),
        num_threads=int(getattr(args, "workers", 0) or 0),
        num_classes=getattr(args, "num_classes", None),
    )
    if not getattr(args, "distributed", False):
        options.update(shard_id=0, num_shards=1)
    if is_training:
        interpolation = getattr(args, "train_interpolation", None) or data_config["interpolation"]
        augment = [a for a in (_erasing(args), _mixing(args)) if a is not None]
        preset = Preset(
            "timm",
            scale=tuple(getattr(args, "scale", None) or (0.08, 1.0)),
            ratio=tuple(getattr(args, "ratio", None) or (3 / 4, 4 / 3)),
            size=height,
            mean=options["mean"],
            std=options["std"],
            color_jitter=_jitter(args),
        )
        aa = getattr(args, "aa", None)
        options.update(
            batch_size=int(args.batch_size),
            preset=preset,
            augment=augment,
            hflip=float(getattr(args, "hflip", 0.5)),
            vflip=float(getattr(args, "vflip", 0.0)),
            interpolation=interpolation,
            auto_augment=from_timm(aa) if aa else None,
            aug_repeats=int(getattr(args, "aug_repeats", 0) or 0),
        )
    else:
        options.update(
            batch_size=int(getattr(args, "validation_batch_size", None) or args.batch_size),
            preset=Preset(
                "timm-eval",
                crop_pct=float(data_config["crop_pct"]),
                crop_mode=crop_mode,
                size=height,
                mean=options["mean"],
                std=options["std"],
            ),
            interpolation=data_config["interpolation"],
        )
    return options


def timm_loader(
    dataset: Any, args: Any, data_config: Mapping[str, Any], *, is_training: bool, **overrides: Any
) -> DaliLoader:
    """The DALI loader for timm's ``create_loader`` call site.

    Args:
        dataset: timm's dataset (``timm.data.create_dataset``: an image folder), or a
            folder / file list / tar shards / :class:`~dali_gridaug.reader.FileSource`.
        args: timm ``train.py``'s parsed arguments.
        data_config: ``timm.data.resolve_data_config(vars(args), model=model)``.
        is_training: the train loader (augmented, shuffled, drop-last) or the eval one.
        overrides: :func:`~dali_gridaug.loader.create_loader` keywords that win over the
            mapping (e.g. ``device="cpu"``).

    Returns:
        A :class:`~dali_gridaug.loader.DaliLoader`; it iterates as ``(input, target)`` and
        has the attributes timm's loop reads (``mixup_enabled``, ``batch_sampler``, …).

    Raises:
        UsageError: an option with no equivalent (named), or a dataset that is not a folder.
    """
    options = loader_options(args, data_config, is_training=is_training)
    options.update(overrides)
    return create_loader(dataset_source(dataset), **options)
