"""The host-side parameter source: the one place that knows how augmentation parameters are
flattened into ``external_source`` outputs and pipeline output names, and back.

Every batch's parameters are drawn from generators keyed by
``(seed, rank, epoch, step, stream)`` (stream = the augmentation's index, or
:data:`FLIP_STREAM` for the horizontal-flip coins), so a batch's parameters depend only on its
position, never on how many batches ran before: runs are reproducible, resumable mid-epoch,
and an epoch schedule moves without rebuilding the pipeline. DALI's ``batch_info.iteration``
counts pipeline runs across epochs; a pipeline runs ``steps_per_epoch`` times per epoch (the
reader pads the last batch), so ``epoch = first_epoch + iteration // steps_per_epoch``.

Flattened names: ``"epoch"`` and ``"flip"`` (both ``(B,)`` int32, emitted), then
``"{i}.{name}"`` for each :class:`~dali_gridaug.augment.base.ParamSpec` of augmentation ``i``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dali_gridaug.augment.base import Augment, Params
from dali_gridaug.augment.graph import is_native, unused_params

#: Generator stream of the flip coins (after any augmentation index).
FLIP_STREAM = 1 << 16


@dataclasses.dataclass(frozen=True)
class ParamNodes:
    """The graph-side parameters: DataNodes (CPU) of one batch.

    Attributes:
        flip: ``(B,)`` int32 horizontal-flip coins (``crop_mirror_normalize``'s ``mirror``).
        augments: per augmentation, its parameter name → node.
        all: flattened name → node (every fed parameter).
    """

    flip: Any
    augments: tuple[dict[str, Any], ...]
    all: dict[str, Any]


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
        paste_before_flip: the graph pastes on un-flipped pixels and flips afterwards, so
            augmentations get the flip coins to mirror their paste arguments.
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
        paste_before_flip: bool = False,
    ) -> None:
        self.augments = tuple(augments)
        self.batch_size, self.height, self.width = batch_size, height, width
        self.seed, self.rank = seed, rank
        self.steps_per_epoch = steps_per_epoch
        self.paste_before_flip = paste_before_flip
        self.first_epoch = 0
        self.first_step = 0
        self.schemas = tuple(a.schema(height, width) for a in self.augments)
        unused = unused_params(self.augments)
        specs = [(f"{i}.{s.name}", s) for i, sch in enumerate(self.schemas) for s in sch]
        specs = [(k, s) for k, s in specs if k not in unused]
        #: every fed name, in ``external_source`` output order
        self.keys = ["epoch", "flip"] + [k for k, _ in specs]
        #: the fed names that are also pipeline outputs
        self.output_names = ["epoch", "flip"] + [k for k, s in specs if s.emitted]

    @classmethod
    def for_spec(cls, spec: Any) -> ParamSource | None:
        """The source a :class:`~dali_gridaug.pipeline.PipelineSpec` is built with: None for
        evaluation; ``steps_per_epoch`` starts at 1 (the loader sets it once the shard size is
        known).
        """
        if not spec.train:
            return None
        return cls(
            spec.augments, batch_size=spec.batch_size, height=spec.size[0], width=spec.size[1],
            seed=spec.seed, rank=spec.shard_id, steps_per_epoch=1,
            paste_before_flip=is_native(spec.augments),
        )  # fmt: skip

    def position(self, iteration: int) -> tuple[int, int]:
        """``(epoch, step)`` of pipeline run ``iteration``."""
        total = self.first_step + iteration
        return self.first_epoch + total // self.steps_per_epoch, total % self.steps_per_epoch

    def _rng(self, epoch: int, step: int, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.rank, epoch, step, stream])

    def draw(self, epoch: int, step: int) -> dict[str, np.ndarray]:
        """All parameters of batch ``step`` of ``epoch``, keyed as :attr:`keys`."""
        b = self.batch_size
        flip = self._rng(epoch, step, FLIP_STREAM).integers(0, 2, b).astype(np.int32)
        out = {"epoch": np.full((b,), epoch, np.int32), "flip": flip}
        for i, aug in enumerate(self.augments):
            params = aug.sample(
                self._rng(epoch, step, i), b, self.height, self.width, epoch,
                flip=flip if self.paste_before_flip else None,
            )  # fmt: skip
            self._check(i, params)
            out.update({f"{i}.{k}": v for k, v in params.items()})
        return out

    def _check(self, i: int, params: Params) -> None:
        """The draw matches the declared schema (names, dtypes, shapes)."""
        aug, schema = self.augments[i], self.schemas[i]
        if set(params) != {s.name for s in schema}:
            raise TypeError(
                f"{type(aug).__name__}.sample returned {sorted(params)}, its schema declares "
                f"{[s.name for s in schema]}"
            )
        for s in schema:
            a = params[s.name]
            if a.dtype != np.dtype(s.dtype) or a.shape != (self.batch_size, *s.shape):
                raise TypeError(
                    f"{type(aug).__name__}.sample: `{s.name}` is {a.dtype}{a.shape}, the schema "
                    f"declares {np.dtype(s.dtype)}{(self.batch_size, *s.shape)}"
                )

    def __call__(self, info: object) -> tuple[np.ndarray, ...]:
        params = self.draw(*self.position(info.iteration))  # type: ignore[attr-defined]
        return tuple(np.ascontiguousarray(params[k]) for k in self.keys)

    # --- graph side ----------------------------------------------------------------------------

    def feed(self) -> ParamNodes:
        """Inside a pipeline definition: one ``external_source`` for every parameter."""
        from nvidia.dali import fn

        nodes = fn.external_source(
            source=self, num_outputs=len(self.keys), batch=True, batch_info=True
        )
        flat = {k: nodes[j] for j, k in enumerate(self.keys)}  # (autograph has no zip strict)
        per_aug = tuple(
            {s.name: flat[f"{i}.{s.name}"] for s in schema if f"{i}.{s.name}" in flat}
            for i, schema in enumerate(self.schemas)
        )
        return ParamNodes(flip=flat["flip"], augments=per_aug, all=flat)

    def outputs(self, nodes: ParamNodes, device: str) -> dict[str, Any]:
        """The emitted parameters as pipeline outputs, named :attr:`output_names`; on the GPU
        for a GPU pipeline, so the labels never wait for a host copy.
        """
        return {
            k: nodes.all[k].gpu() if device == "gpu" else nodes.all[k] for k in self.output_names
        }

    def unflatten(self, out: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Per augmentation, its emitted parameters from a pipeline output dict."""
        return [
            {s.name: out[f"{i}.{s.name}"] for s in schema if s.emitted}
            for i, schema in enumerate(self.schemas)
        ]
