"""The host-side parameter source: the one place that knows how augmentation parameters are
flattened into ``external_source`` outputs and pipeline output names, and back.

Every batch's parameters are drawn on the host for one :class:`~dali_gridaug.order.Step`
(a global batch as this rank sees it), never from how many batches ran before: runs are
reproducible, resumable mid-epoch at any world size, and an epoch schedule moves without
rebuilding the pipeline. Two kinds of draw (see :mod:`dali_gridaug.rows`):

- per-sample rules (the flip coin, the preset's crop/colour/lighting draws, every mask
  augmentation) draw the whole global batch from ``(seed, epoch, step start, stream)`` and
  keep this rank's rows: a file gets the same draw at any world size;
- a mixing augmentation pairs samples inside this rank's batch, so its draws (λ, partners,
  boxes) come from ``(seed, epoch, step start, stream, rank)``; with
  :attr:`ParamSource.mixing_enabled` False it feeds its no-mix draw instead (λ 1, partner
  itself, nothing pasted), which leaves every other draw as it was.

Flattened names: ``"epoch"`` and ``"flip"`` (both ``(B,)`` int32, emitted), the preset's
``"preset.{name}"``, then ``"{i}.{name}"`` for each
:class:`~dali_gridaug.augment.base.ParamSpec` of augmentation ``i``.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dali_gridaug.augment.base import Augment, MixAugment, Params, ParamSpec, SampleContext
from dali_gridaug.augment.graph import is_native, unused_params
from dali_gridaug.config import PipelineSpec
from dali_gridaug.constants import RRC_ATTEMPTS
from dali_gridaug.decode import rrc_draws
from dali_gridaug.order import Step
from dali_gridaug.presets import RANDOM_INTERPOLATIONS, Preset
from dali_gridaug.rows import RowGenerator

#: Generator streams of the flip coins and the preset's draws (after any augmentation index).
FLIP_STREAM = 1 << 16
PRESET_STREAM = FLIP_STREAM + 1
VFLIP_STREAM = FLIP_STREAM + 2
#: Last key of a mixing augmentation's (per-rank) generator, before the rank.
BATCH_KEY = 1 << 17


@dataclasses.dataclass(frozen=True)
class ParamNodes:
    """The graph-side parameters: DataNodes (CPU) of one batch.

    Attributes:
        flip: ``(B,)`` int32 horizontal-flip coins (``crop_mirror_normalize``'s ``mirror``).
        vflip: ``(B,)`` int32 vertical-flip coins (``fn.flip``), None when ``vflip`` is 0.
        preset: the preset's draws, name → node (:func:`preset_schema`).
        augments: per augmentation, its parameter name → node.
        all: flattened name → node (every fed parameter).
    """

    flip: Any
    preset: dict[str, Any]
    augments: tuple[dict[str, Any], ...]
    all: dict[str, Any]
    vflip: Any = None


class ParamSource:
    """Draws and flattens one batch's parameters (fed by :class:`~dali_gridaug.feed.Feed`).

    Args:
        augments: the pipeline's augmentations, in application order.
        batch_size: B, the largest batch of this rank.
        height: image height H after cropping.
        width: image width W.
        seed: the run's seed.
        rank: this rank (keys the mixing augmentations' draws only).
        preset: the input preset whose crop, colour and lighting draws are fed; None for
            graphs that feed their own cropped images (benchmarks, tests).
        paste_before_flip: the graph pastes on un-flipped pixels and flips afterwards, so
            augmentations get the flip coins to mirror their paste arguments.
        hflip: horizontal-flip probability; 0.5 draws the fair coin of ``integers(0, 2)``
            (today's draws), else ``random() < hflip``, both from the flip stream.
        vflip: vertical-flip probability, from its own stream; 0 feeds no ``"vflip"``.
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
        preset: Preset | None = None,
        paste_before_flip: bool = False,
        hflip: float = 0.5,
        vflip: float = 0.0,
    ) -> None:
        self.augments = tuple(augments)
        self.batch_size, self.height, self.width = batch_size, height, width
        self.seed, self.rank = seed, rank
        self.preset = preset
        self.paste_before_flip = paste_before_flip
        self.hflip, self.vflip = float(hflip), float(vflip)
        #: False: every mixing augmentation feeds its :meth:`~dali_gridaug.augment.base.
        #: MixAugment.unmixed` draw (``loader.mixup_enabled``); read at each :meth:`draw`
        self.mixing_enabled = True
        self.schemas = tuple(a.schema(height, width) for a in self.augments)
        self.preset_specs = preset_schema(preset) if preset is not None else ()
        unused = unused_params(self.augments)
        specs = [(f"preset.{s.name}", s) for s in self.preset_specs]
        specs += [(f"{i}.{s.name}", s) for i, sch in enumerate(self.schemas) for s in sch]
        specs = [(k, s) for k, s in specs if k not in unused]
        coins = ["epoch", "flip"] + (["vflip"] if self.vflip > 0 else [])
        #: every fed name, in ``external_source`` output order
        self.keys = coins + [k for k, _ in specs]
        #: the fed names that are also pipeline outputs
        self.output_names = coins + [k for k, s in specs if s.emitted]

    @classmethod
    def for_spec(cls, spec: PipelineSpec) -> ParamSource | None:
        """The source a :class:`~dali_gridaug.config.PipelineSpec` is built with: None for
        evaluation. Its batch is DALI's (:attr:`~dali_gridaug.config.PipelineSpec.dali_batch`).
        """
        if not spec.train:
            return None
        return cls(
            spec.augments,
            batch_size=spec.dali_batch,
            height=spec.size[0],
            width=spec.size[1],
            seed=spec.seed,
            rank=spec.shard_id,
            preset=spec.preset,
            paste_before_flip=is_native(spec.augments),
            hflip=spec.hflip,
            vflip=spec.vflip,
        )

    def _rng(self, step: Step, stream: int, *rank: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, step.epoch, step.start, stream, *rank])

    def rows(self, step: Step, stream: int) -> RowGenerator:
        """The per-sample generator of ``stream`` for ``step`` (see :mod:`dali_gridaug.rows`)."""
        return RowGenerator(self._rng(step, stream), step.rows, step.size)

    def draw(self, step: Step) -> dict[str, np.ndarray]:
        """All parameters of this rank's batch of ``step``, keyed as :attr:`keys`."""
        b = len(step.rows)
        coin = self.rows(step, FLIP_STREAM)
        if self.hflip == 0.5:  # today's fair coin, bit for bit
            flip = coin.integers(0, 2, b).astype(np.int32)
        else:
            flip = (coin.random(b) < self.hflip).astype(np.int32)
        out = {"epoch": np.full((b,), step.epoch, np.int32), "flip": flip}
        if self.vflip > 0:
            vcoin = self.rows(step, VFLIP_STREAM).random(b)
            out["vflip"] = (vcoin < self.vflip).astype(np.int32)
        if self.preset is not None:
            own = sample_preset(self.preset, self.rows(step, PRESET_STREAM), b)
            self._check("preset", self.preset_specs, own, b)
            out.update({f"preset.{k}": v for k, v in own.items()})
        ctx = SampleContext(
            b, self.height, self.width, step.epoch, flip if self.paste_before_flip else None
        )
        for i, aug in enumerate(self.augments):
            if isinstance(aug, MixAugment) and not self.mixing_enabled:
                params = aug.unmixed(ctx)
            else:
                rng = self._rng(step, i, BATCH_KEY, self.rank) if aug.mixing else self.rows(step, i)
                params = aug.sample(rng, ctx)
            self._check(type(aug).__name__, self.schemas[i], params, b)
            out.update({f"{i}.{k}": v for k, v in params.items()})
        return out

    @staticmethod
    def _check(owner: str, schema: Sequence[ParamSpec], params: Params, b: int) -> None:
        """The draw matches the declared schema (names, dtypes, shapes)."""
        if set(params) != {s.name for s in schema}:
            raise TypeError(
                f"{owner}.sample returned {sorted(params)}, its schema declares "
                f"{[s.name for s in schema]}"
            )
        for s in schema:
            a = params[s.name]
            if a.dtype != np.dtype(s.dtype) or a.shape != (b, *s.shape):
                raise TypeError(
                    f"{owner}.sample: `{s.name}` is {a.dtype}{a.shape}, the schema "
                    f"declares {np.dtype(s.dtype)}{(b, *s.shape)}"
                )

    def flat(self, step: Step) -> list[np.ndarray]:
        """:meth:`draw` as contiguous arrays in :attr:`keys` order (``external_source``)."""
        params = self.draw(step)
        return [np.ascontiguousarray(params[k]) for k in self.keys]

    # --- graph side ----------------------------------------------------------------------------

    def standalone(self) -> ParamNodes:
        """Inside a pipeline definition: an ``external_source`` of this source's draws for
        one rank's batches of ``batch_size``, one after another (benchmarks and tests that
        feed the images themselves; the loader's :class:`~dali_gridaug.feed.Feed` feeds both).
        """
        from nvidia.dali import fn

        b, count = self.batch_size, itertools.count()
        rows = np.arange(b, dtype=np.int64)

        def draw() -> tuple[np.ndarray, ...]:
            return tuple(self.flat(Step(0, next(count) * b, b, rows, rows)))

        return self.nodes(fn.external_source(source=draw, num_outputs=len(self.keys), batch=True))

    def nodes(self, fed: Sequence[Any]) -> ParamNodes:
        """Inside a pipeline definition: the parameter nodes from ``fed``, the
        ``external_source`` outputs in :attr:`keys` order.
        """
        flat = {k: fed[j] for j, k in enumerate(self.keys)}  # (autograph has no zip strict)
        per_aug = tuple(
            {s.name: flat[f"{i}.{s.name}"] for s in schema if f"{i}.{s.name}" in flat}
            for i, schema in enumerate(self.schemas)
        )
        own = {s.name: flat[f"preset.{s.name}"] for s in self.preset_specs}
        return ParamNodes(
            flip=flat["flip"], preset=own, augments=per_aug, all=flat, vflip=flat.get("vflip")
        )

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


# --- the preset's per-sample rules ------------------------------------------------------------


def preset_schema(preset: Preset) -> tuple[ParamSpec, ...]:
    """The per-sample training draws of ``preset``, fed from the host.

    A file's crop and colour draws then do not depend on its rank:

    - under ``invariant_crop``, the random-resized crop's ``A`` attempts and offsets,
      ``rrc``, ``rrc_rank``, ``rrc_u``, ``rrc_fallback``
      (:func:`~dali_gridaug.decode.rrc_draws`); with the pad crop, ``pad`` ``(2,)`` float32
      uniforms of its offsets (y, x);
    - ``jitter`` ``(3,)`` float32 brightness, contrast, saturation factors, with colour jitter;
    - ``lighting`` ``(3,)`` float32 standard-normal PCA coefficients α, with lighting;
    - ``interp`` ``()`` int32 index into :data:`~dali_gridaug.presets.RANDOM_INTERPOLATIONS`,
      for the random-resized crop under ``interpolation="random"``.
    """
    a = RRC_ATTEMPTS
    rrc = [("rrc", (a, 2)), ("rrc_rank", (a,)), ("rrc_u", (2,)), ("rrc_fallback", (2,))]
    specs = []
    if preset.host_window:
        specs += [ParamSpec(n, np.float32, shape, emitted=False) for n, shape in rrc]
    elif preset.crop == "pad":
        specs.append(ParamSpec("pad", np.float32, (2,), emitted=False))
    if preset.color_jitter is not None:
        specs.append(ParamSpec("jitter", np.float32, (3,)))
    if preset.lighting is not None:
        specs.append(ParamSpec("lighting", np.float32, (3,)))
    if preset.random_filter:
        specs.append(ParamSpec("interp", np.int32, (), emitted=False))
    return tuple(specs)


def sample_preset(preset: Preset, rng: Any, batch_size: int) -> Params:
    """Draw :func:`preset_schema`'s arrays for a batch of ``batch_size`` (``rng``: a
    per-sample :class:`~dali_gridaug.rows.RowGenerator` or a NumPy generator).
    """
    b = batch_size
    out: Params = {}
    if preset.host_window:
        out = rrc_draws(rng.random((b, 2 * RRC_ATTEMPTS + 2)), preset.scale, preset.ratio)
    elif preset.crop == "pad":
        out = {"pad": rng.random((b, 2)).astype(np.float32)}
    cj = preset.color_jitter
    if cj is not None:
        x = np.array([cj.brightness, cj.contrast, cj.saturation])
        out["jitter"] = rng.uniform(np.maximum(0.0, 1.0 - x), 1.0 + x, (b, 3)).astype(np.float32)
    if preset.lighting is not None:
        out["lighting"] = rng.standard_normal((b, 3)).astype(np.float32)
    if cj is not None and cj.p < 1:  # drawn last: every earlier draw stays as it was
        skip = rng.random(b) >= cj.p
        out["jitter"][skip] = 1.0
    if preset.random_filter:  # drawn last, as the coin above
        out["interp"] = rng.integers(0, len(RANDOM_INTERPOLATIONS), b).astype(np.int32)
    return out
