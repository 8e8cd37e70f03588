"""Per-sample draws that depend on a sample's place in the global order, not on its rank.

A :class:`RowGenerator` answers the few :class:`numpy.random.Generator` calls the per-sample
``sample`` rules make (``random``, ``uniform``, ``integers``, ``standard_normal``,
``normal``). Each call draws the whole global batch, ``(G, …)`` values from one generator
keyed by the step (its epoch and start position), and keeps this rank's rows, so row ``i``
of every draw is a function of ``(seed, epoch, step start, offset in the global batch)``
only: the same file gets the same flip, mask (and, under ``invariant_crop``, crop) at any
world size. The host cost is ``W`` times a rank's own draw (microseconds per thousand
samples).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


class RowGenerator:
    """A rank's rows of draws made for the whole global batch.

    Args:
        rng: the global batch's generator (the same on every rank).
        rows: ``(b,)`` int64 offsets of this rank's samples in the global batch.
        size: G, samples in the global batch.
    """

    def __init__(self, rng: np.random.Generator, rows: np.ndarray, size: int) -> None:
        self._rng, self.rows, self.size = rng, rows, size

    def _shape(self, size: int | Sequence[int] | None, *bounds: Any) -> tuple[int, ...]:
        shape = np.broadcast_shapes(*(np.shape(b) for b in bounds)) if size is None else size
        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
        if not shape or shape[0] != len(self.rows):
            raise TypeError(
                f"per-sample draws need a leading batch dimension of {len(self.rows)}, got "
                f"shape {shape}; draw batch-level values in a mixing augmentation"
            )
        return shape

    def random(self, size: int | Sequence[int] | None = None) -> np.ndarray:
        """Uniform floats in [0, 1), ``(b, …)`` float64."""
        shape = self._shape(size)
        return self._rng.random((self.size, *shape[1:]))[self.rows]

    def uniform(self, low: Any = 0.0, high: Any = 1.0, size: Any = None) -> np.ndarray:
        """Uniform floats in [low, high) (bounds broadcast against ``(b, …)``)."""
        u = self.random(self._shape(size, low, high))
        return np.asarray(low) + u * (np.asarray(high) - np.asarray(low))

    def integers(self, low: Any, high: Any = None, size: Any = None) -> np.ndarray:
        """Integers in [low, high) as ``floor(low + u·(high − low))``, ``(b, …)`` int64."""
        if high is None:
            low, high = 0, low
        low, high = np.asarray(low, np.int64), np.asarray(high, np.int64)
        u = self.random(self._shape(size, low, high))
        return np.minimum(low + np.floor(u * (high - low)).astype(np.int64), high - 1)

    def standard_normal(self, size: int | Sequence[int] | None = None) -> np.ndarray:
        """Standard-normal floats, ``(b, …)`` float64."""
        shape = self._shape(size)
        return self._rng.standard_normal((self.size, *shape[1:]))[self.rows]

    def normal(self, loc: Any = 0.0, scale: Any = 1.0, size: Any = None) -> np.ndarray:
        """Normal floats (``loc``/``scale`` broadcast against ``(b, …)``)."""
        z = self.standard_normal(self._shape(size, loc, scale))
        return np.asarray(loc) + z * np.asarray(scale)
