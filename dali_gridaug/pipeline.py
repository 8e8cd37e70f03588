"""Compose the DALI graph: read → decode/crop → normalize → augment → (CHW) outputs.

Outputs, in order: ``images``, ``key`` (file index, or ``cls`` bytes for tar shards),
``clean`` (optional un-augmented view), then the augmentation parameters of
:class:`~dali_gridaug.params.ParamSource` whose key does not start with ``_``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from dali_gridaug import presets
from dali_gridaug.augment.base import Augment
from dali_gridaug.decode import normalize
from dali_gridaug.params import ParamSource
from dali_gridaug.reader import Source, read


@dataclasses.dataclass(frozen=True)
class PipelineSpec:
    """Everything that defines one rank's pipeline (see ``create_loader`` for meanings)."""

    source: Source
    batch_size: int
    train: bool
    size: tuple[int, int]
    augments: tuple[Augment, ...]
    device: str  # "gpu" | "cpu"
    device_id: int | None
    seed: int
    num_threads: int
    shard_id: int
    num_shards: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    half: bool
    keep_clean: bool = False
    auto_augment: str | None = None
    prefetch: int = 2
    checkpointing: bool = False
    preset: presets.Preset = presets.IMAGENET


def build_pipeline(
    spec: PipelineSpec, params: ParamSource | None, *, checkpoint: str | bytes | None = None
) -> tuple[Any, list[str]]:
    """Build the pipeline for ``spec``; ``params`` feeds the augmentations (None: none).

    ``checkpoint`` (from the DALI iterator's ``checkpoints()``, needs ``spec.checkpointing``)
    restores the reader position and the random state of every DALI operator, and the
    ``external_source`` iteration counter that keys ``params``.

    Returns:
        ``(pipeline, output_names)``.
    """
    from nvidia.dali import fn, pipeline_def

    @pipeline_def(
        batch_size=spec.batch_size,
        num_threads=spec.num_threads,
        device_id=spec.device_id,
        seed=spec.seed + spec.shard_id,
        prefetch_queue_depth=spec.prefetch,
        enable_checkpointing=spec.checkpointing,
        exec_dynamic=True,
        enable_conditionals=spec.auto_augment is not None,  # auto_aug policies need them
    )
    def graph() -> tuple[Any, ...]:
        encoded, key = read(
            spec.source, shard_id=spec.shard_id, num_shards=spec.num_shards,
            shuffle=spec.train, seed=spec.seed,
        )
        mean: Any = spec.mean
        if spec.train:
            pixels = presets.decode_train(encoded, spec.preset, device=spec.device, size=spec.size)
            # the preset's colour ops are part of both views; one draw drives both
            pixels = presets.color_ops(pixels, spec.preset)
            mean = presets.normalize_mean(spec.preset, spec.mean)  # PCA lighting, if any
            crop = None
        else:
            pixels = presets.decode_val(encoded, spec.preset, device=spec.device, size=spec.size)
            crop = spec.size
        outputs: dict[str, Any] = {"key": key}
        clean_pixels = pixels
        if spec.auto_augment is not None:
            pixels = _auto_augment(pixels, spec.auto_augment)
        # one coin, so the clean view is flipped exactly like the augmented one
        mirror = fn.random.coin_flip(probability=0.5) if spec.train else None
        images = normalize(
            pixels, mean=mean, std=spec.std, mirror=mirror, crop=crop,
            layout="HWC" if spec.augments else "CHW", half=spec.half and not spec.augments,
        )
        if spec.keep_clean:
            outputs["clean"] = normalize(
                clean_pixels, mean=mean, std=spec.std, mirror=mirror, crop=crop,
                layout="CHW", half=spec.half,
            )
        if params is not None and spec.augments:
            nodes = dict(zip(params.keys, fn.external_source(
                source=params, num_outputs=len(params.keys), batch=True, batch_info=True,
            )))
            for i, aug in enumerate(spec.augments):
                mine = {k.split(".", 1)[1]: v for k, v in nodes.items() if k.startswith(f"{i}.")}
                images = _apply(aug, images, mine, spec)
            images = fn.transpose(images, perm=[2, 0, 1], output_layout="CHW")
            if spec.half:
                from nvidia.dali import types

                images = fn.cast(images, dtype=types.FLOAT16)
            outputs.update({k: v for k, v in nodes.items() if "._" not in k})
        return (images, *outputs.values())

    if checkpoint is not None and not spec.checkpointing:
        raise ValueError("`checkpoint` needs a pipeline built with `checkpointing`=True")
    pipe = graph(checkpoint=checkpoint)
    names = ["images", "key"]
    if spec.keep_clean:
        names.append("clean")
    if params is not None and spec.augments:
        names += [k for k in params.keys if "._" not in k]
    return pipe, names


def _apply(aug: Augment, images: Any, params: dict[str, Any], spec: PipelineSpec) -> Any:
    """Apply one augmentation with its resolved backend; GPU images get GPU-side params."""
    h, w = spec.size
    if aug.resolve_backend() == "dali":
        return aug.apply_dali(images, params, h, w)
    from nvidia.dali import fn

    names = sorted(params)
    inputs = [params[k].gpu() if spec.device == "gpu" else params[k] for k in names]
    return fn.python_function(
        images, *inputs, function=_KernelCall(aug, names), batch_processing=True,
        output_layouts="HWC", device=spec.device,
    )


class _KernelCall:
    """``python_function`` body: stack the batch, run ``aug.apply_xp``, split it again."""

    def __init__(self, aug: Augment, names: Sequence[str]) -> None:
        self.aug, self.names = aug, list(names)

    def __call__(self, images: list[Any], *params: list[Any]) -> list[Any]:
        from dali_gridaug.kernels import get_xp

        xp = get_xp(images[0])
        batch = xp.stack(images)
        args = {k: xp.stack(v) for k, v in zip(self.names, params)}
        out = self.aug.apply_xp(xp, batch, args)
        return list(out)


def _auto_augment(pixels: Any, policy: str) -> Any:
    """DALI's ``auto_aug`` policies on HWC uint8 images (the Keep selective-paste view)."""
    from nvidia.dali.auto_aug import auto_augment, rand_augment, trivial_augment

    if policy == "rand_augment":
        return rand_augment.rand_augment(pixels, n=2, m=9)
    if policy == "auto_augment":
        return auto_augment.auto_augment_image_net(pixels)
    if policy == "trivial_augment":
        return trivial_augment.trivial_augment_wide(pixels)
    raise ValueError(
        "`auto_augment` must be one of 'rand_augment', 'auto_augment', 'trivial_augment'; "
        f"got {policy!r}"
    )
