"""``create_loader``'s argument checks and defaults: each raises ``TypeError``/``ValueError``
naming the argument, its range and the value, before any pipeline is built.
"""

from __future__ import annotations

import math
import numbers
import os
from typing import Any

import torch

from dali_gridaug._validate import check_int, check_sequence
from dali_gridaug.augment.base import Augment
from dali_gridaug.reader import FileSource, Source


def image_size(image_size: Any) -> tuple[int, int]:
    if isinstance(image_size, (tuple, list)) and len(image_size) == 2:
        pair = image_size
    elif isinstance(image_size, numbers.Integral) and not isinstance(image_size, bool):
        pair = (image_size, image_size)
    else:
        raise TypeError(f"`image_size` must be an int or an (H, W) pair, got {image_size!r}")
    return tuple(check_int(f"image_size[{i}]", s, 1) for i, s in enumerate(pair))  # type: ignore


def augments(augment: Any, size: tuple[int, int], batch_size: int) -> tuple[Augment, ...]:
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
    if isinstance(exclude, (str, os.PathLike)):
        raise TypeError(f"`exclude` must be a sequence of file paths, got one path {exclude!r}")
    exclude = check_sequence("exclude", exclude, "file paths")
    for p in exclude:
        if not isinstance(p, (str, os.PathLike)):
            raise TypeError(f"`exclude` items must be file paths, got {p!r}")
    return tuple(os.fspath(p) for p in exclude)


def pipeline_batch(
    batch_size: int, source: Source, world: int, drop_last: bool, size: tuple[int, int]
) -> int:
    """DALI's batch size: ``batch_size``, capped at the rank's shard without drop_last (one
    partial batch either way; DALI would allocate and pad the whole batch).
    """
    if isinstance(source, FileSource):
        shard = math.ceil(len(source) / world)
        if drop_last and shard < batch_size:
            raise ValueError(
                f"`batch_size`={batch_size} is larger than this rank's shard of "
                f"{shard} files; with drop_last every batch would be dropped"
            )
        batch_size = min(batch_size, max(shard, 1))
    # float32 CHW outputs of the queued batches (prefetch 2 + the one handed out + one being
    # built): a lower bound of what DALI allocates
    need = batch_size * size[0] * size[1] * 3 * 4 * 4
    ram = physical_memory()
    if ram and need > ram:
        raise ValueError(
            f"`batch_size`={batch_size} at {size[0]}×{size[1]} needs at least "
            f"{need / 2**30:.0f} GiB of batch buffers, more than this machine's "
            f"{ram / 2**30:.0f} GiB of memory"
        )
    return batch_size


def physical_memory() -> int:
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
    local = os.environ.get("LOCAL_RANK")
    return int(local) if local is not None else torch.cuda.current_device()
