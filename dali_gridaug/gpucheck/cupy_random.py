"""The ``cupy.random`` of the CuPy-rules stand-in: ``RandomState`` draws NumPy's numbers as
device arrays; every other ``cupy.random`` name is known but not emulated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from dali_gridaug.gpucheck.cupy_api import CUPY_RANDOM, RANDOM_STATE_METHODS, MissingCuPyAPI

if TYPE_CHECKING:
    from dali_gridaug.gpucheck.cupy_rules import DeviceArray, StrictCuPy


class StandInRandomState:
    """``cupy.random.RandomState`` with NumPy's numbers; the seed must be a host integer."""

    def __init__(self, xp: StrictCuPy, seed: Any) -> None:
        self._xp, self._rng = xp, np.random.default_rng(seed)

    def standard_normal(self, size: Any = None, dtype: Any = float) -> DeviceArray:
        return self._xp._wrap(self._rng.standard_normal(size).astype(dtype))

    def uniform(self, low: float = 0.0, high: float = 1.0, size: Any = None, dtype: Any = float):
        return self._xp._wrap(self._rng.uniform(low, high, size).astype(dtype))

    def __getattr__(self, name: str) -> Any:
        if name not in RANDOM_STATE_METHODS:
            self._xp._fail(MissingCuPyAPI, f"cupy.random.RandomState has no attribute {name!r}")
        raise NotImplementedError(f"the stand-in does not emulate RandomState.{name}")


class RandomModule:
    """The stand-in's ``cupy.random``: ``RandomState`` is emulated, any other name of
    :data:`CUPY_RANDOM` raises ``NotImplementedError`` and a name CuPy lacks raises
    :class:`MissingCuPyAPI`.
    """

    def __init__(self, xp: StrictCuPy) -> None:
        self._xp = xp

    def RandomState(self, seed: Any = None) -> StandInRandomState:  # noqa: N802 (CuPy's name)
        if isinstance(seed, self._xp.ndarray):  # CuPy converts it with int(): a sync
            seed = int(seed)
        return StandInRandomState(self._xp, seed)

    def __getattr__(self, name: str) -> Any:
        if name not in CUPY_RANDOM:
            self._xp._fail(MissingCuPyAPI, f"module 'cupy.random' has no attribute {name!r}")
        raise NotImplementedError(f"the stand-in does not emulate cupy.random.{name}")


__all__ = ["RandomModule", "StandInRandomState"]
