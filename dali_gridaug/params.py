"""The host-side parameter source: one ``external_source`` callback per pipeline.

Every batch's augmentation parameters are drawn from a generator keyed by
``(seed, rank, epoch, step, augmentation index)``, so a batch's parameters depend only on its
position, never on how many batches ran before: runs are reproducible, resumable mid-epoch,
and an epoch schedule moves without rebuilding the pipeline. DALI's ``batch_info.iteration``
counts pipeline runs across epochs; a pipeline runs ``steps_per_epoch`` times per epoch (the
reader pads the last batch), so ``epoch = first_epoch + iteration // steps_per_epoch``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dali_gridaug.augment.base import Augment


class ParamSource:
    """Callable for ``fn.external_source(batch=True, batch_info=True)``.

    Args:
        augments: the pipeline's augmentations, in application order.
        batch_size: B.
        height: image height H after cropping.
        width: image width W.
        seed: the run's seed.
        rank: this shard's index (ranks draw different streams).
        steps_per_epoch: pipeline runs per epoch.
    """

    def __init__(
        self,
        augments: Sequence[Augment],
        *,
        batch_size: int,
        height: int,
        width: int,
        seed: int,
        rank: int,
        steps_per_epoch: int,
    ) -> None:
        self.augments = tuple(augments)
        self.batch_size, self.height, self.width = batch_size, height, width
        self.seed, self.rank = seed, rank
        self.steps_per_epoch = steps_per_epoch
        self.first_epoch = 0
        self.first_step = 0
        self.keys = ["epoch"] + [
            f"{i}.{k}" for i, a in enumerate(self.augments) for k in self._keys(a)
        ]

    def _keys(self, aug: Augment) -> list[str]:
        probe = aug.sample(np.random.default_rng(0), self.batch_size, self.height, self.width, 0)
        return list(aug.keys) + sorted(k for k in probe if k.startswith("_"))

    def position(self, iteration: int) -> tuple[int, int]:
        """``(epoch, step)`` of pipeline run ``iteration``."""
        total = self.first_step + iteration
        return self.first_epoch + total // self.steps_per_epoch, total % self.steps_per_epoch

    def draw(self, epoch: int, step: int) -> dict[str, np.ndarray]:
        """All parameters of batch ``step`` of ``epoch``, keyed as :attr:`keys`."""
        out = {"epoch": np.full((self.batch_size,), epoch, np.int32)}
        for i, aug in enumerate(self.augments):
            rng = np.random.default_rng([self.seed, self.rank, epoch, step, i])
            params = aug.sample(rng, self.batch_size, self.height, self.width, epoch)
            out.update({f"{i}.{k}": v for k, v in params.items()})
        return out

    def __call__(self, info: object) -> tuple[np.ndarray, ...]:
        params = self.draw(*self.position(info.iteration))  # type: ignore[attr-defined]
        return tuple(np.ascontiguousarray(params[k]) for k in self.keys)
