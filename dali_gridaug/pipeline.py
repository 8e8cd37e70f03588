"""Compose the DALI graph: read → decode/crop → augment → normalize (CHW) → outputs.

Outputs, in order: ``images``, ``key`` (file index, or ``cls`` bytes for tar shards),
``clean`` (optional un-augmented view), then the emitted parameters of
:class:`~dali_gridaug.params.ParamSource` (``epoch``, ``flip``, ``"{i}.{name}"``; on the GPU in
a GPU pipeline).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from dali_gridaug import presets
from dali_gridaug.augment.base import Augment
from dali_gridaug.augment.graph import augment_graph, check_kernel_dependencies
from dali_gridaug.constants import HW_DECODER_LOAD
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
    hw_decoder_load: float = HW_DECODER_LOAD
    label_smoothing: float = 0.0
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
    from nvidia.dali import pipeline_def

    check_kernel_dependencies(spec.augments, spec.device)

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
            spec.source,
            shard_id=spec.shard_id,
            num_shards=spec.num_shards,
            shuffle=spec.train,
            seed=spec.seed,
        )
        pixels, mean, crop = _decode(encoded, spec)
        outputs: dict[str, Any] = {"key": key.gpu() if spec.device == "gpu" else key}
        nodes = params.feed() if params is not None else None
        # one coin per sample, drawn on the host: the clean view is flipped like the augmented
        mirror = nodes.flip if nodes is not None else None
        clean_pixels = pixels
        if spec.auto_augment is not None:
            pixels = _auto_augment(pixels, spec.auto_augment)
        if spec.augments and nodes is not None:
            images = augment_graph(pixels, nodes, mirror, mean, spec)
        else:
            images = normalize(
                pixels, mean=mean, std=spec.std, mirror=mirror, crop=crop, layout="CHW",
                half=spec.half,
            )  # fmt: skip
        if spec.keep_clean:
            outputs["clean"] = normalize(clean_pixels, mean=mean, std=spec.std, mirror=mirror,
                                         crop=crop, layout="CHW", half=spec.half)  # fmt: skip
        if params is not None and nodes is not None:
            outputs.update(params.outputs(nodes, spec.device))
        return (images, *outputs.values())

    if checkpoint is not None and not spec.checkpointing:
        raise ValueError("`checkpoint` needs a pipeline built with `checkpointing`=True")
    pipe = graph(checkpoint=checkpoint)
    names = ["images", "key"]
    if spec.keep_clean:
        names.append("clean")
    if params is not None:
        names += params.output_names
    return pipe, names


def _decode(encoded: Any, spec: PipelineSpec) -> tuple[Any, Any, tuple[int, int] | None]:
    """Decode and crop ``encoded`` as ``spec``'s preset says.

    Returns:
        ``(pixels, mean, crop)``: HWC uint8 pixels (train: the random-resized crop of
        ``spec.size`` after the preset's colour ops; val: resized, still to be centre-cropped),
        the normalization mean (a per-sample node under PCA lighting) and the centre crop that
        normalization takes (val only, else None).
    """
    hw = spec.hw_decoder_load
    if not spec.train:
        pixels = presets.decode_val(
            encoded, spec.preset, device=spec.device, size=spec.size, hw_load=hw
        )
        return pixels, spec.mean, spec.size
    pixels = presets.decode_train(
        encoded, spec.preset, device=spec.device, size=spec.size, hw_load=hw
    )
    # the preset's colour ops are part of both views; one draw drives both
    pixels = presets.color_ops(pixels, spec.preset)
    return pixels, presets.normalize_mean(spec.preset, spec.mean), None


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
