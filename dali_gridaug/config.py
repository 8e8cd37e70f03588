"""The loader's configuration, spelled once: :class:`LoaderConfig` (every ``create_loader``
option, its default and its check), :func:`resolve` (a config and a source → one rank's
:class:`PipelineSpec`) and the spec itself.

A new loader option is a field of :class:`LoaderConfig` (its default, its line of the
docstring, its check in ``__post_init__``) and the code that reads it from the spec; nothing
hands options on by name.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import torch

from dali_gridaug import loader_args
from dali_gridaug._validate import check_channels, check_int, check_range, check_type
from dali_gridaug.augment.base import Augment
from dali_gridaug.constants import HW_DECODER_LOAD, PREFETCH
from dali_gridaug.policies import AugmentPolicy
from dali_gridaug.policies import resolve as resolve_policy
from dali_gridaug.presets import ColorJitter, Lighting, Preset, resolve_preset
from dali_gridaug.reader import Source


@dataclasses.dataclass(frozen=True)
class LoaderConfig:
    """Every option of :func:`~dali_gridaug.loader.create_loader`, checked at construction
    (a bad one raises ``TypeError``/``ValueError`` naming it, its range and the value, before
    any file is read). ``dataclasses.replace(config, ...)`` makes variants (checked again);
    :meth:`evaluation` the matching validation loader's.

    Args:
        batch_size: images per batch per rank.
        train: random-resized crop + flip + ``augment`` (True) or resize + centre crop.
        image_size: output side in pixels, or ``(H, W)``; default the preset's (224, CIFAR 32).
        augment: augmentation configs; per-sample ones apply in order, one mixing op last.
        device: ``"gpu"``, ``"cpu"`` (DALI's CPU backend) or ``"auto"`` (GPU when usable).
        seed: run seed: the epoch's sample order and every host draw derive from it (DALI's
            own operators, e.g. ``auto_augment``'s, are seeded ``seed + rank``).
        num_threads: DALI CPU threads; ``None`` or ``0`` (a ``DataLoader``'s
            ``num_workers=0``, e.g. a script's ``--workers 0``) mean the default, the CPU
            count, at most 8. So ``num_threads=args.workers`` maps a DataLoader worker count.
        shard_id: this rank; default the ``torch.distributed`` rank, else 0.
        num_shards: number of ranks; default the ``torch.distributed`` world size, else 1.
        mean: per-channel mean in 0–255 pixel units (``0`` with ``std=1`` gives raw pixels);
            default the preset's.
        std: per-channel std in 0–255 pixel units; default the preset's.
        dtype: ``torch.float32`` or ``torch.float16`` images.
        drop_last: drop the last partial batch; default True for train, False for eval.
        keep_clean: also return the un-augmented crop as ``Batch.clean`` (Keep stage).
        auto_augment: a policy applied (with DALI's ``auto_aug``, in the graph) before
            normalization: a name of :data:`dali_gridaug.policies.POLICIES`
            (``"rand_augment"``, ``"auto_augment"``, ``"trivial_augment"``) or a policy object
            (:class:`~dali_gridaug.policies.RandAugment`, ``TrivialAugment``, ``AutoAugment``,
            e.g. ``policies.from_timm("rand-m9-mstd0.5-inc1")``); the clean view stays
            available.
        exclude: file paths to leave out (e.g. the bad files ``dali-gridaug check-data`` found).
        preset: input pipeline, ``"imagenet"`` (random-resized crop; val resize + centre crop),
            ``"cifar"`` (pad 4 + random crop; val unchanged) or a
            :class:`~dali_gridaug.presets.Preset`.
        color_jitter: train colour jitter, a :class:`~dali_gridaug.presets.ColorJitter` or
            ``x`` for ``ColorJitter(x, x, x)`` (clovaai ImageNet: 0.4); None: the preset's.
        lighting: train PCA lighting, a :class:`~dali_gridaug.presets.Lighting` or its ``std``
            (clovaai ImageNet: 0.1); None: the preset's.
        hw_decoder_load: share of JPEGs in [0, 1] the GPU decoder sends to the hardware JPEG
            decoder where the GPU has one (A100/H100); ignored on the CPU.
        label_smoothing: ε in [0, 1), the one label-smoothing knob: every target, soft
            (mixing) or hard, becomes ``(1 − ε)·t + ε/K``, ``(B, K)`` float32 (timm's
            formula). ``Mixup``/``MixupCutMix`` keep timm's own ``label_smoothing`` argument:
            it is used when this is 0, and the two set to different values are an error.
        num_classes: K, the width of soft targets ``(B, K)``: the model's class count
            (default: the dataset's). Must be ≥ the dataset's class count (every label < K).
        aug_repeats: timm's repeated augmentation: each sample appears ``aug_repeats`` times
            per epoch, on different ranks (0 and 1: none; training only).
        hflip: train horizontal-flip probability in [0, 1] per sample (timm's ``hflip``; a
            host-drawn coin, emitted as the ``"flip"`` parameter; 0.5 draws today's coins).
        vflip: train vertical-flip probability in [0, 1] per sample (timm's ``vflip``; its own
            host-drawn coin, emitted as ``"vflip"`` when > 0). Applied right after the crop,
            before any augmentation, so both views and every paste see the flipped crop.
        interpolation: resize filter of the train crop and the val resize, ``"bilinear"``,
            ``"bicubic"`` or ``"nearest"`` (antialiased), or timm's ``"random"`` (bilinear or
            bicubic per train sample, a host draw; val bilinear); None: the preset's.
        invariant_crop: where the random-resized crop window is drawn (the preset's
            ``invariant_crop``; None: the preset's, False by default): DALI's decoder
            (False, the fastest, rank-dependent) or the host, keyed by each sample's global
            position (True: the same window at any world size and across a resume).
    """

    batch_size: int
    train: bool = True
    image_size: int | tuple[int, int] | None = None
    augment: Sequence[Augment] = ()
    device: str = "auto"
    seed: int = 0
    num_threads: int | None = None
    shard_id: int | None = None
    num_shards: int | None = None
    mean: float | Sequence[float] | None = None
    std: float | Sequence[float] | None = None
    dtype: torch.dtype = torch.float32
    drop_last: bool | None = None
    keep_clean: bool = False
    auto_augment: str | AugmentPolicy | None = None
    exclude: Sequence[str] = ()
    preset: str | Preset = "imagenet"
    color_jitter: ColorJitter | float | None = None
    lighting: Lighting | float | None = None
    hw_decoder_load: float = HW_DECODER_LOAD
    label_smoothing: float = 0.0
    num_classes: int | None = None
    aug_repeats: int = 0
    hflip: float = 0.5
    vflip: float = 0.0
    interpolation: str | None = None
    invariant_crop: bool | None = None

    def __post_init__(self) -> None:
        checked: dict[str, Any] = {"batch_size": check_int("batch_size", self.batch_size, 1)}
        loader_args.check_flags(
            self.device,
            self.dtype,
            self.train,
            self.keep_clean,
            self.drop_last,
            self.auto_augment,
        )
        if self.num_threads is not None:
            checked["num_threads"] = check_int("num_threads", self.num_threads, 0)
        preset = self.final_preset()
        for name in ("hflip", "vflip"):
            check_range(name, getattr(self, name), 0, 1)
            checked[name] = float(getattr(self, name))
        augment = loader_args.augments(self.augment, preset.size, checked["batch_size"])
        if augment and not self.train:
            raise ValueError("`augment` is for training loaders; pass train=True or augment=()")
        _, world = loader_args.distributed(self.shard_id, self.num_shards)
        # DALI seeds are int64 and rank r's pipeline uses seed + r
        checked["seed"] = check_int("seed", self.seed, 0, 2**63 - world)
        check_range("hw_decoder_load", self.hw_decoder_load, 0, 1)
        loader_args.target_smoothing(self.label_smoothing, augment)
        checked |= {
            "augment": augment,
            "exclude": loader_args.paths(self.exclude),
            "aug_repeats": loader_args.repeats(self.aug_repeats, self.train),
            "hw_decoder_load": float(self.hw_decoder_load),
            "label_smoothing": float(self.label_smoothing),
        }
        for name in ("shard_id", "num_shards"):
            if getattr(self, name) is not None:
                checked[name] = int(getattr(self, name))
        if self.num_classes is not None:
            checked["num_classes"] = check_int("num_classes", self.num_classes, 1)
        for name, value in checked.items():  # the checked values, as Python scalars
            object.__setattr__(self, name, value)

    def final_preset(self) -> Preset:
        """The preset this config runs: ``preset`` with ``color_jitter``, ``lighting``,
        ``interpolation``, ``invariant_crop``, ``image_size`` (as ``(H, W)``), ``mean`` and
        ``std`` applied where given (each checked under its own name).
        """
        pre = resolve_preset(
            self.preset,
            color_jitter=self.color_jitter,
            lighting=self.lighting,
            interpolation=self.interpolation,
        )
        if self.invariant_crop is not None:
            check_type("invariant_crop", self.invariant_crop, bool)
        mean = check_channels("mean", pre.mean if self.mean is None else self.mean)
        std = check_channels("std", pre.std if self.std is None else self.std)
        if any(s <= 0 for s in std):
            raise ValueError(f"`std` must be positive, got {self.std}")
        size = loader_args.image_size_pair(pre.size if self.image_size is None else self.image_size)
        crop = pre.invariant_crop if self.invariant_crop is None else self.invariant_crop
        return dataclasses.replace(pre, size=size, mean=mean, std=std, invariant_crop=crop)

    def evaluation(self, **changes: Any) -> LoaderConfig:
        """The validation loader's config for this training one: the same preset, size,
        normalization, device, seed and ranks, no training-only option (augmentations,
        policy, clean view, colour ops, flips, repeats, smoothing, exclusions,
        ``drop_last``), then ``changes`` (e.g. ``batch_size``).
        """
        plain = {name: FIELDS[name].default for name in TRAIN_ONLY}
        return dataclasses.replace(self, train=False, **plain, **changes)


#: every option's field, by name
FIELDS: dict[str, dataclasses.Field[Any]] = {f.name: f for f in dataclasses.fields(LoaderConfig)}
#: the options a validation loader leaves at their defaults (:meth:`LoaderConfig.evaluation`)
TRAIN_ONLY = (
    "augment",
    "auto_augment",
    "keep_clean",
    "color_jitter",
    "lighting",
    "hflip",
    "vflip",
    "aug_repeats",
    "label_smoothing",
    "exclude",
    "drop_last",
)


@dataclasses.dataclass(frozen=True)
class PipelineSpec:
    """One rank's resolved loader: what its DALI graph, its feed and its labels stage read.
    Built by :func:`resolve`; the meanings are :class:`LoaderConfig`'s.
    """

    source: Source
    #: images per batch per rank, as asked (the global step is ``batch_size × num_shards``)
    batch_size: int
    train: bool
    #: the final preset: crop rule, ``size`` ``(H, W)``, ``mean``, ``std``, colour ops
    preset: Preset
    augments: tuple[Augment, ...]
    device: str  # "gpu" | "cpu"
    device_id: int | None
    seed: int
    num_threads: int
    shard_id: int
    num_shards: int
    half: bool
    drop_last: bool
    #: K of the soft targets
    num_classes: int
    keep_clean: bool = False
    auto_augment: AugmentPolicy | None = None
    #: DALI's prefetch depth: 3 lets the host-fed crop's small CPU operators of one batch
    #: overlap the decode of the previous ones (measured: 2 left the CPU loader ~5 % behind)
    prefetch: int = PREFETCH
    hw_decoder_load: float = HW_DECODER_LOAD
    label_smoothing: float = 0.0
    #: train flip probabilities per sample (host-drawn coins, :mod:`dali_gridaug.params`)
    hflip: float = 0.5
    vflip: float = 0.0
    repeats: int = 0

    @property
    def size(self) -> tuple[int, int]:
        """Output ``(H, W)`` in pixels (the preset's)."""
        return self.preset.size  # type: ignore[return-value]

    @property
    def mean(self) -> tuple[float, ...]:
        """Per-channel mean, 0–255 units (the preset's)."""
        return self.preset.mean

    @property
    def std(self) -> tuple[float, ...]:
        """Per-channel std, 0–255 units (the preset's)."""
        return self.preset.std

    @property
    def dali_batch(self) -> int:
        """DALI's batch size: :attr:`batch_size` capped at the rank's share of the source
        (:func:`~dali_gridaug.loader_args.shard_batch`).
        """
        return loader_args.shard_batch(self.batch_size, len(self.source), self.num_shards)


def resolve(config: LoaderConfig, source: Any) -> PipelineSpec:
    """``config`` over ``source`` as this rank's :class:`PipelineSpec`: the rank and world
    (``torch.distributed``'s where not given), the device, the dataset (``exclude``
    applied, at least one file per rank), ``drop_last`` and ``num_classes`` resolved, the
    batch checked against the shard and this machine's memory.

    Raises:
        TypeError, ValueError: as :class:`LoaderConfig`, and a source that does not fit
            (the message names the argument and both values).
    """
    rank, world = loader_args.distributed(config.shard_id, config.num_shards)
    seed = check_int("seed", config.seed, 0, 2**63 - world)
    src = loader_args.dataset(source, tuple(config.exclude), world, config.num_classes)
    drop_last = config.train if config.drop_last is None else config.drop_last
    preset = config.final_preset()
    loader_args.check_batch(config.batch_size, src, world, drop_last, preset.size)
    dev = loader_args.resolve_device(config.device)
    policy = config.auto_augment
    return PipelineSpec(
        source=src,
        batch_size=config.batch_size,
        train=config.train,
        preset=preset,
        augments=tuple(config.augment),
        device=dev,
        device_id=loader_args.device_id() if dev == "gpu" else None,
        seed=seed,
        num_threads=config.num_threads or max(1, min(8, os.cpu_count() or 1)),
        shard_id=rank,
        num_shards=world,
        half=config.dtype == torch.float16,
        drop_last=drop_last,
        num_classes=loader_args.num_classes(config.num_classes, src),
        keep_clean=config.keep_clean,
        auto_augment=None if policy is None else resolve_policy(policy),
        hw_decoder_load=config.hw_decoder_load,
        label_smoothing=loader_args.target_smoothing(config.label_smoothing, config.augment),
        hflip=config.hflip,
        vflip=config.vflip,
        repeats=config.aug_repeats,
    )


__all__ = ["FIELDS", "TRAIN_ONLY", "LoaderConfig", "PipelineSpec", "resolve"]
