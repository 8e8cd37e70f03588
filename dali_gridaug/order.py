"""Stage 1, order: the loader's one global sample order and how ranks share it.

Epoch ``e`` reads its samples in one global order, drawn from ``(seed, e)`` alone (a
permutation of the ``N`` sample indices; the identity for evaluation). With ``W`` ranks of
``B`` images each, the global batch is ``G = B·W`` and global step ``s`` consumes the
positions ``[p₀ + s·G, p₀ + (s+1)·G)`` of that order (``p₀`` is where the epoch was
resumed, else 0). Rank ``r`` takes the positions ``r, r + W, r + 2W, …`` of each global
batch (``DistributedSampler``'s stride), so the set of positions consumed after ``s`` global
steps never depends on ``W``, and a state saved at any world size continues at any other.

Repeated augmentation (DeiT's ``RepeatAugSampler``, timm's ``aug_repeats``): the order holds
each index ``k`` times in a row, padded by wrapping to a multiple of ``W`` and cut to
``RepeatAugSampler``'s ``num_selected_samples · W`` positions, so the ``k`` copies of an image
land on ``k`` different ranks exactly as that sampler puts them (its epoch length depends on
``W``, as timm's does).

Everything here is NumPy on the host, computed once per epoch (a 1.28M-sample order takes
about 20 ms); no image is touched.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

import numpy as np

#: Generator stream of the epoch permutation (the parameter streams use others).
ORDER_STREAM = 1 << 20
#: ``RepeatAugSampler``'s ``selected_round``: the per-epoch count is rounded down to it.
REPEAT_ROUND = 256


def epoch_order(seed: int, epoch: int, num_samples: int, *, shuffle: bool) -> np.ndarray:
    """The epoch's permutation of ``range(num_samples)``.

    Returns:
        ``(N,)`` int64 sample indices, one per position (``arange`` when not ``shuffle``).
    """
    if not shuffle:
        return np.arange(num_samples, dtype=np.int64)
    return np.random.default_rng([seed, epoch, ORDER_STREAM]).permutation(num_samples)


def repeat_order(perm: np.ndarray, repeats: int, world: int) -> np.ndarray:
    """``RepeatAugSampler``'s global order for ``world`` ranks: ``perm`` with each index
    ``repeats`` times in a row, cut (or, for tiny datasets, wrapped) to ``S·W`` positions,
    ``S = floor(N // 256 · 256 / W)`` (``ceil(N / W)`` when ``N < 256``): that sampler's
    ``num_selected_samples`` per rank. Its padding to ``ceil(N·k / W)·W`` and its cap at
    that length never act: ``S·W`` is at most that.

    Returns:
        ``(S·W,)`` int64 sample indices; rank ``r`` reads positions ``r, r + W, …``.
    """
    n = len(perm)
    if n >= REPEAT_ROUND:
        selected = n // REPEAT_ROUND * REPEAT_ROUND // world
    else:
        selected = math.ceil(n / world)
    return np.resize(np.repeat(perm, repeats), selected * world)


@dataclasses.dataclass(frozen=True)
class Step:
    """One global step as one rank sees it.

    Attributes:
        epoch: the epoch.
        start: position of the step's first sample in the epoch's order.
        size: samples in the global batch (``G``, or fewer for the last one).
        rows: ``(b,)`` int64 offsets of this rank's samples inside the global batch.
        indices: ``(b,)`` int64 sample indices of those rows (``order[start + rows]``).
    """

    epoch: int
    start: int
    size: int
    rows: np.ndarray
    indices: np.ndarray


@dataclasses.dataclass(frozen=True)
class Split:
    """How one rank reads an epoch's order: ``world`` ranks of ``batch_size`` samples.

    Attributes:
        batch_size: B, samples per rank and step.
        world: W, the number of ranks.
        rank: this rank.
        drop_last: drop a last global batch smaller than ``B·W`` (train), else every rank
            takes its rows of it (its batch may be smaller, or empty and skipped).
    """

    batch_size: int
    world: int
    rank: int
    drop_last: bool

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world

    def end(self, length: int, start: int) -> int:
        """The position the epoch stops at when it starts at ``start`` of ``length``."""
        if not self.drop_last:
            return length
        return start + (length - start) // self.global_batch * self.global_batch

    def num_steps(self, length: int, start: int = 0) -> int:
        """Global steps from ``start`` to the end of an order of ``length`` positions."""
        return math.ceil(max(0, self.end(length, start) - start) / self.global_batch)

    def num_batches(self, length: int, start: int = 0) -> int:
        """Batches this rank yields from ``start`` (steps where it has at least one row)."""
        end = self.end(length, start)
        full, last = divmod(max(0, end - start), self.global_batch)
        return full + (1 if last > self.rank else 0)

    def steps(self, order: np.ndarray, epoch: int, start: int = 0) -> Iterator[Step]:
        """This rank's steps from ``start`` on; steps with no row of this rank are skipped."""
        end, g = self.end(len(order), start), self.global_batch
        for p in range(start, end, g):
            size = min(g, end - p)
            rows = np.arange(self.rank, size, self.world, dtype=np.int64)
            if len(rows):
                yield Step(epoch, p, size, rows, order[p + rows])
