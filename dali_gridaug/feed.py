"""The host feed: the pipeline's one ``external_source``, one call per batch of this rank.

Each call takes this rank's next :class:`~dali_gridaug.order.Step` of the epoch's global
order and feeds, for its samples: what to read (file paths for DALI's C++
``fn.io.file.read``, or the bytes of tar members read by offset), the sample indices, their
positions in the epoch's order, and the batch's parameters
(:class:`~dali_gridaug.params.ParamSource`). The epoch ends with ``StopIteration``. The
feed runs ahead of the loader by DALI's prefetch depth; it keeps the steps it fed and not
yet handed out (:meth:`Feed.handed_out`), so the loader's position counts only what a
training loop saw, and a decode failure is traced to its files.
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from dali_gridaug.config import PipelineSpec
from dali_gridaug.order import Split, Step, epoch_order, repeat_order
from dali_gridaug.params import ParamSource
from dali_gridaug.reader import FileSource, Source, read_tar_members


class Feed:
    """Callable for ``fn.external_source(batch=True)``; see the module docstring.

    Args:
        source: the dataset.
        split: this rank's share of each global step.
        seed: the run's seed (the order is drawn from ``(seed, epoch)``).
        shuffle: draw a new permutation each epoch (training), else dataset order.
        params: the parameter source, or None (evaluation).
        repeats: repeated augmentation (``RepeatAugSampler``): each index ``repeats`` times
            per epoch; 0 or 1 for none.
    """

    def __init__(
        self,
        source: Source,
        split: Split,
        *,
        seed: int,
        shuffle: bool,
        params: ParamSource | None = None,
        repeats: int = 0,
    ) -> None:
        self.source, self.split, self.seed, self.shuffle = source, split, seed, shuffle
        self.params, self.repeats = params, repeats
        self.num_samples = len(source)
        self._steps: Iterator[Step] = iter(())
        self._fed: collections.deque[Step] = collections.deque()
        self._order: tuple[int, np.ndarray] = (-1, np.empty(0, np.int64))
        self.start(0, 0)

    @classmethod
    def for_spec(cls, spec: PipelineSpec) -> Feed:
        """The feed a :class:`~dali_gridaug.config.PipelineSpec` is built with: its rank's
        split of the global steps, its parameter source (training).
        """
        split = Split(spec.batch_size, spec.num_shards, spec.shard_id, spec.drop_last)
        return cls(
            spec.source,
            split,
            seed=spec.seed,
            shuffle=spec.train,
            params=ParamSource.for_spec(spec),
            repeats=spec.repeats,
        )

    def order(self, epoch: int) -> np.ndarray:
        """The epoch's global order: ``(P,)`` int64 sample indices (the last one is kept)."""
        if self._order[0] != epoch:
            perm = epoch_order(self.seed, epoch, self.num_samples, shuffle=self.shuffle)
            if self.repeats > 1:
                perm = repeat_order(perm, self.repeats, self.split.world)
            self._order = (epoch, perm)
        return self._order[1]

    def length(self, epoch: int) -> int:
        """Positions in the epoch's order (``N``, or the repeated order's length)."""
        return len(self.order(epoch))

    def start(self, epoch: int, position: int) -> None:
        """Feed epoch ``epoch`` from ``position`` on (drops anything fed and not handed out)."""
        self._steps = self.split.steps(self.order(epoch), epoch, position)
        self._fed.clear()

    def stop(self) -> None:
        """End the epoch at what is already fed (the next call raises ``StopIteration``)."""
        self._steps = iter(())

    def in_flight(self) -> int:
        """Batches fed and not yet handed out (DALI's prefetched ones)."""
        return len(self._fed)

    def handed_out(self) -> Step:
        """The oldest fed step, now handed to the loop (DALI returns batches in order)."""
        return self._fed.popleft()

    def pending(self) -> list[tuple[str, Callable[[], bytes]]]:
        """``(name, read)`` of the samples fed and not yet handed out (a decode failure is
        among them; see :func:`~dali_gridaug.errors.decode_error`).
        """
        out: list[tuple[str, Callable[[], bytes]]] = []
        for step in self._fed:
            for i in step.indices:
                out.append((self.name(int(i)), functools.partial(self.read, int(i))))
        return out

    def name(self, index: int) -> str:
        """Sample ``index``'s name: its path (tar shards: ``shard:member``)."""
        if isinstance(self.source, FileSource):
            return self.source.files[index]
        return self.source.member_name(index)

    def read(self, index: int) -> bytes:
        """Sample ``index``'s encoded bytes, read on the host."""
        if isinstance(self.source, FileSource):
            with open(self.source.files[index], "rb") as f:
                return f.read()
        return bytes(read_tar_members(self.source, [index])[0])

    def __call__(self) -> tuple[Any, ...]:
        step = next(self._steps)  # StopIteration ends the epoch
        self._fed.append(step)
        idx = step.indices
        if isinstance(self.source, FileSource):
            files = self.source.files
            data: Any = [np.frombuffer(files[i].encode(), np.uint8) for i in idx]
        else:
            data = read_tar_members(self.source, idx)
        fed = [data, idx, step.start + step.rows]
        if self.params is not None:
            fed += self.params.flat(step)
        return tuple(fed)
