"""What the suites share: our augmentation configs (the same settings as the references),
GPU detection, and endless iteration over a loader."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import torch

from benchmarks.reference import gridmask_d
from dali_gridaug.augment import CutMix, Cutout, GridMask, GridMix, RandomErasing
from dali_gridaug.augment.base import Augment

#: our augmentations, in plot order.
AUGS: tuple[str, ...] = ("gridmask", "cutout", "random_erasing", "cutmix", "gridmix")
BACKENDS: tuple[str, ...] = ("dali", "kernel")


def our_augment(name: str, backend: str, image_size: int) -> Augment:
    """Our config for ``name`` with the ImageNet recipe, applied to every sample/batch
    (GridMask's epoch ramp off, apply probabilities 1) so the cost is the worst case."""
    if name == "gridmask":
        return GridMask(
            r=0.6, d=gridmask_d(image_size), rotate=360, p=1.0, ramp_epochs=0, backend=backend
        )
    if name == "cutout":
        return Cutout(length=max(1, image_size // 2), p=1.0, backend=backend)
    if name == "random_erasing":
        return RandomErasing(p=1.0, backend=backend)
    if name == "cutmix":
        return CutMix(alpha=1.0, p=1.0, backend=backend)
    if name == "gridmix":
        return GridMix(n=4, p=0.8, backend=backend)
    raise KeyError(f"unknown augmentation {name!r}; choose from {AUGS}")


def gpu_skip_reason(settings_device: str) -> str | None:
    """Why a GPU configuration cannot run, or None."""
    if not torch.cuda.is_available():
        return "no CUDA GPU on this machine"
    if settings_device != "gpu":
        return "--device cpu was requested"
    return None


def endless(loader: Iterable[Any]) -> Iterator[Any]:
    """Iterate ``loader`` epoch after epoch (timings never include an epoch restart stall of
    our making; DALI keeps prefetching across epochs)."""
    while True:
        yield from loader


@contextlib.contextmanager
def hw_decoder_load(value: float | None) -> Iterator[None]:
    """Build pipelines with ``hw_decoder_load=value``.

    ``create_loader`` has no option for it: this patches the module constant
    ``dali_gridaug.decode.HW_DECODER_LOAD``, which the decoder reads when the graph is built.
    """
    if value is None:
        yield
        return
    import dali_gridaug.decode as decode

    if not hasattr(decode, "HW_DECODER_LOAD"):  # fail loudly rather than measure one setting
        raise RuntimeError(
            "dali_gridaug.decode no longer reads HW_DECODER_LOAD; update the hw_decoder_load "
            "sweep (benchmarks/suites/common.py)"
        )
    old = decode.HW_DECODER_LOAD
    decode.HW_DECODER_LOAD = value
    try:
        yield
    finally:
        decode.HW_DECODER_LOAD = old
