"""The checks of the loader's options (:class:`~dali_gridaug.config.LoaderConfig` runs
them at construction, :func:`~dali_gridaug.config.resolve` against the source and the
machine): each raises ``TypeError``/``ValueError`` naming the option, its range and the
value, before any pipeline is built. Also the check of a ``resume`` state.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from dali_gridaug._validate import (
    check_choice,
    check_int,
    check_range,
    check_sequence,
    check_type,
)
from dali_gridaug.augment.base import Augment
from dali_gridaug.constants import PREFETCH
from dali_gridaug.policies import resolve as resolve_policy
from dali_gridaug.reader import FileSource, Source, resolve_source


def check_flags(
    device: Any,
    dtype: Any,
    train: Any,
    keep_clean: Any,
    drop_last: Any,
    auto_augment: Any,
) -> None:
    """The choice and flag options of :class:`~dali_gridaug.config.LoaderConfig` checked."""
    check_choice("device", device, ("auto", "gpu", "cpu"))
    check_choice("dtype", dtype, (torch.float32, torch.float16))
    for name, flag in [("train", train), ("keep_clean", keep_clean)]:
        check_type(name, flag, bool)
    if drop_last is not None:
        check_type("drop_last", drop_last, bool)
    if auto_augment is not None:
        resolve_policy(auto_augment)


def dataset(source: Any, exclude: tuple[str, ...], world: int, num_classes: Any = None) -> Source:
    """The resolved ``source`` (tar shards: ``num_classes`` classes) minus ``exclude``, with
    at least one file per rank.
    """
    src = resolve_source(source, num_classes)
    if exclude:
        if not isinstance(src, FileSource):
            raise ValueError("`exclude` needs a file-backed source (ImageFolder or file list)")
        src = src.without(exclude)
    if isinstance(src, FileSource) and len(src) < world:
        raise ValueError(f"dataset has {len(src)} files, fewer than `num_shards`={world}")
    return src


def target_smoothing(smoothing: Any, augment: Sequence[Augment]) -> float:
    """The one ε of the labels stage: the loader's, else a mixing augmentation's own."""
    check_range("label_smoothing", smoothing, 0, 1, high_open=True)
    own = {a.target_smoothing() for a in augment} - {0.0}
    if smoothing and own and own != {smoothing}:
        raise ValueError(
            f"`label_smoothing`={smoothing} of the loader and `label_smoothing`="
            f"{', '.join(map(str, sorted(own)))} of the augmentation differ; set one of them"
        )
    return float(smoothing or (own.pop() if own else 0.0))


#: The fields of a loader ``state_dict``.
STATE_FIELDS = ("epoch", "position", "mixup_enabled", "seed", "num_samples", "source")
#: Fields a state may lack (saved by an earlier dali-gridaug), with the value they then take.
STATE_DEFAULTS: dict[str, Any] = {"mixup_enabled": True}


def check_state(state: Any, identity: Mapping[str, Any]) -> tuple[int, int, bool]:
    """Check a ``resume`` state (a :meth:`~dali_gridaug.loader.DaliLoader.state_dict`) against
    the loader it is restored into, whose ``identity`` (seed, sample count, source hash) it
    must match.

    Returns:
        ``(epoch, position, mixup_enabled)`` (``mixup_enabled`` True for a state saved
        before it was a field).

    Raises:
        TypeError, ValueError: the state is not a mapping, misses a field, or was saved with
            another seed or source (the message names the field and both values).
    """
    if not isinstance(state, Mapping):
        raise TypeError(f"`resume` must be a loader state_dict(), got {type(state).__name__}")
    missing = set(STATE_FIELDS) - set(state) - set(STATE_DEFAULTS)
    if missing:
        old = " (a checkpoint of an older dali-gridaug)" if "dali" in state else ""
        raise ValueError(f"loader state is missing {', '.join(sorted(missing))}{old}")
    for key, value in identity.items():
        if state[key] != value:
            what = {"source": "a source whose file list has SHA-256"}.get(key, f"`{key}`=")
            raise ValueError(
                f"loader state was saved with {what}{state[key]}, this loader has {value}; "
                "resume with the same dataset and seed"
            )
    mixup = state.get("mixup_enabled", STATE_DEFAULTS["mixup_enabled"])
    check_type("resume['mixup_enabled']", mixup, bool)
    return (
        check_int("resume['epoch']", state["epoch"], 0),
        check_int("resume['position']", state["position"], 0),
        bool(mixup),
    )


def repeats(aug_repeats: Any, train: bool) -> int:
    """``aug_repeats`` checked: an int ≥ 0 (0 and 1 mean none), for training loaders only."""
    k = check_int("aug_repeats", aug_repeats, 0)
    if k > 1 and not train:
        raise ValueError(f"`aug_repeats`={k} is for training loaders; pass train=True or 0")
    return k


def image_size_pair(image_size: Any) -> tuple[int, int]:
    """``image_size`` (an int or an ``(H, W)`` pair) as a checked ``(H, W)``."""
    if isinstance(image_size, (tuple, list)) and len(image_size) == 2:
        pair = image_size
    elif isinstance(image_size, numbers.Integral) and not isinstance(image_size, bool):
        pair = (image_size, image_size)
    else:
        raise TypeError(f"`image_size` must be an int or an (H, W) pair, got {image_size!r}")
    return tuple(check_int(f"image_size[{i}]", s, 1) for i, s in enumerate(pair))  # type: ignore


def augments(augment: Any, size: tuple[int, int], batch_size: int) -> tuple[Augment, ...]:
    """``augment`` checked: configs that fit ``size`` and ``batch_size``, one mixing op last."""
    if isinstance(augment, Augment):
        raise TypeError(f"`augment` must be a sequence of configs, e.g. [{augment!r}]")
    augment = check_sequence("augment", augment, "augmentation configs (use () for none)")
    for a in augment:
        if not isinstance(a, Augment):
            raise TypeError(f"`augment` items must be augmentation configs, got {a!r}")
        a.check_geometry(size[0], size[1], batch_size)
    mixing = [a for a in augment if a.mixing]
    if len(mixing) > 1 or (mixing and augment[-1] is not mixing[0]):
        raise ValueError("`augment`: at most one mixing augmentation (CutMix/GridMix), placed last")
    return augment


def paths(exclude: Any) -> tuple[str, ...]:
    """``exclude`` checked, as a tuple of path strings."""
    if isinstance(exclude, (str, os.PathLike)):
        raise TypeError(f"`exclude` must be a sequence of file paths, got one path {exclude!r}")
    exclude = check_sequence("exclude", exclude, "file paths")
    for p in exclude:
        if not isinstance(p, (str, os.PathLike)):
            raise TypeError(f"`exclude` items must be file paths, got {p!r}")
    return tuple(os.fspath(p) for p in exclude)


def check_batch(
    batch_size: int, source: Source, world: int, drop_last: bool, size: tuple[int, int]
) -> None:
    """``batch_size`` against the rank's share of ``source`` (with ``drop_last`` at least one
    whole batch) and this machine's memory (DALI allocates its batch, capped at the share).
    """
    n = len(source)
    if drop_last and n < batch_size * world:
        raise ValueError(
            f"`batch_size`={batch_size} is larger than this rank's shard of "
            f"{math.ceil(n / world)} files ({n} over `num_shards`={world}); with drop_last "
            "every batch would be dropped"
        )
    batch_size = shard_batch(batch_size, n, world)
    # float32 CHW outputs of the queued batches (the prefetch depth + the one handed out + one
    # being built): a lower bound of what DALI allocates
    need = batch_size * size[0] * size[1] * 3 * 4 * (PREFETCH + 2)
    ram = physical_memory()
    if ram and need > ram:
        raise ValueError(
            f"`batch_size`={batch_size} at {size[0]}×{size[1]} needs at least "
            f"{need / 2**30:.0f} GiB of batch buffers, more than this machine's "
            f"{ram / 2**30:.0f} GiB of memory"
        )


def shard_batch(batch_size: int, num_samples: int, world: int) -> int:
    """DALI's batch size: ``batch_size`` capped at a rank's share of ``num_samples`` (one
    partial batch either way; DALI would allocate the whole batch).
    """
    return min(batch_size, max(math.ceil(num_samples / world), 1))


def physical_memory() -> int:
    """This machine's physical memory in bytes (0 when unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def num_classes(num_classes: Any, source: Source) -> int:
    """K of the soft targets: ``num_classes`` or the dataset's class count, checked."""
    if isinstance(source, FileSource):
        have = max(len(source.classes), max(source.targets, default=-1) + 1)
    else:
        have = source.num_classes
    if num_classes is None:
        return have
    k = check_int("num_classes", num_classes, 1)
    if k < have:
        raise ValueError(
            f"`num_classes`={k} is smaller than the dataset's {have} classes (labels 0 to "
            f"{have - 1}); pass the model's class count, at least {have}"
        )
    return k


def distributed(shard_id: int | None, num_shards: int | None) -> tuple[int, int]:
    """``(rank, world)``: the given shard arguments, else ``torch.distributed``'s, checked."""
    dist = torch.distributed
    initialized = dist.is_available() and dist.is_initialized()
    world = num_shards if num_shards is not None else (dist.get_world_size() if initialized else 1)
    rank = shard_id if shard_id is not None else (dist.get_rank() if initialized else 0)
    world = check_int("num_shards", world, 1)
    rank = check_int("shard_id", rank)
    if not 0 <= rank < world:
        raise ValueError(f"`shard_id` must be in [0, {world - 1}] (num_shards={world}), got {rank}")
    return rank, world


def resolve_device(device: str) -> str:
    """``"auto"`` is ``"gpu"`` only when both torch and DALI can use a CUDA device."""
    if device == "cpu":
        return device
    why = gpu_unusable()
    if device == "gpu" and why:
        raise ValueError(f"`device`='gpu' but {why}; use 'cpu' or 'auto'")
    return "cpu" if why else "gpu"


def gpu_unusable() -> str:
    """Why the GPU path cannot run here ('' when it can)."""
    if not torch.cuda.is_available():
        return "torch sees no usable CUDA device"
    try:
        from nvidia.dali import backend

        if backend.GetCUDADeviceCount() < 1:
            return "DALI sees no CUDA device (its CUDA driver or build is missing)"
    except (ImportError, RuntimeError, AttributeError) as exc:
        return f"DALI's CUDA support is unusable ({exc})"
    return ""


def device_id() -> int:
    """The CUDA device of this process: ``LOCAL_RANK``, else torch's current device."""
    local = os.environ.get("LOCAL_RANK")
    return int(local) if local is not None else torch.cuda.current_device()
