"""Batched mask and paste kernels written once against an array module ``xp``.

``xp`` is :mod:`numpy` (CPU, CI) or :mod:`cupy` (GPU). The same functions back the DALI
``python_function`` backend, the saliency stage and the test oracles.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from dali_gridaug.kernels.masks import box_keep_mask, cell_keep_mask, grid_keep_mask
from dali_gridaug.kernels.noise import normal_noise
from dali_gridaug.kernels.paste import mix_by_mask

__all__ = [
    "box_keep_mask",
    "cell_keep_mask",
    "from_xp",
    "get_xp",
    "grid_keep_mask",
    "mix_by_mask",
    "normal_noise",
    "to_xp",
]


def get_xp(array: Any) -> ModuleType:
    """The array module (numpy or cupy) that owns ``array``; cupy is imported lazily."""
    if type(array).__module__.startswith("cupy"):
        import cupy

        return cupy
    import numpy

    return numpy


def to_xp(tensor: Any) -> tuple[ModuleType, Any]:
    """Zero-copy view of a torch tensor as a numpy (CPU) or cupy (CUDA) array, with its module."""
    if tensor.is_cuda:
        import cupy

        return cupy, cupy.from_dlpack(tensor.detach())
    import numpy

    return numpy, tensor.detach().numpy()


def from_xp(array: Any, device: Any = None) -> Any:
    """Zero-copy torch tensor from a numpy or cupy array (``device`` moves it if given)."""
    import torch

    out = (
        torch.from_dlpack(array)
        if hasattr(array, "__dlpack__") and not isinstance(array, __import__("numpy").ndarray)
        else torch.from_numpy(array)
    )
    return out if device is None else out.to(device)
