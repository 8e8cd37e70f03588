"""Batched mask and paste kernels written once against an array module ``xp``.

``xp`` is :mod:`numpy` (CPU, CI) or :mod:`cupy` (GPU) in the DALI ``python_function``
backend and the test oracles; the Keep stage calls the mask kernels with :mod:`torch` on its
own tensors (no CuPy needed there).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from dali_gridaug.kernels.masks import box_visible_mask, cell_visible_mask, grid_visible_mask
from dali_gridaug.kernels.noise import normal_noise
from dali_gridaug.kernels.paste import mix_by_mask

__all__ = [
    "box_visible_mask",
    "cell_visible_mask",
    "get_xp",
    "grid_visible_mask",
    "mix_by_mask",
    "normal_noise",
]


def get_xp(array: Any) -> ModuleType:
    """The array module (numpy or cupy) that owns ``array``; cupy is imported lazily."""
    if type(array).__module__.startswith("cupy"):
        import cupy

        return cupy
    import numpy

    return numpy
