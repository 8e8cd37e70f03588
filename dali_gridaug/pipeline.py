"""Compose the DALI graph: feed → read → decode/crop → augment → normalize (CHW) → outputs.

Outputs, in order: ``images``, ``key`` (the sample index), ``position`` (its position in
the epoch's global order, :mod:`dali_gridaug.order`), ``crop`` (the random-resized crop
window ``(y, x, h, w)`` in source pixels, training under the preset's ``invariant_crop``),
``clean`` (optional un-augmented view), then the emitted parameters of
:class:`~dali_gridaug.params.ParamSource` (``epoch``, ``flip``, ``"preset.{name}"``,
``"{i}.{name}"``); on the GPU in a GPU pipeline.
"""

from __future__ import annotations

from typing import Any

from dali_gridaug.augment.graph import augment_graph, check_kernel_dependencies
from dali_gridaug.config import PipelineSpec
from dali_gridaug.decode import color_ops, decode_train, decode_val, normalize, normalize_mean
from dali_gridaug.feed import Feed
from dali_gridaug.params import ParamNodes
from dali_gridaug.reader import check_readable, read


def build_pipeline(spec: PipelineSpec, feed: Feed) -> tuple[Any, list[str]]:
    """Build the pipeline for ``spec``, fed by ``feed`` (its parameters feed the
    augmentations; none for evaluation).

    Returns:
        ``(pipeline, output_names)``.
    """
    from nvidia.dali import fn, pipeline_def, types

    check_kernel_dependencies(spec.augments, spec.device)
    check_readable(spec.source)
    params = feed.params

    def on_device(node: Any) -> Any:
        """``node`` on the pipeline's device (a function, not two lambdas on one line, which
        DALI's autograph cannot tell apart and warns about).
        """
        return node.gpu() if spec.device == "gpu" else node

    @pipeline_def(
        batch_size=spec.dali_batch,
        num_threads=spec.num_threads,
        device_id=spec.device_id,
        seed=spec.seed + spec.shard_id,
        prefetch_queue_depth=spec.prefetch,
        exec_dynamic=True,
        enable_conditionals=spec.auto_augment is not None,  # auto_aug policies need them
    )
    def graph() -> tuple[Any, ...]:
        n = 3 + (len(params.keys) if params is not None else 0)
        fed = fn.external_source(source=feed, num_outputs=n, batch=True)
        encoded = read(spec.source, fed[0])
        nodes = params.nodes(fed[3:]) if params is not None else None
        outputs: dict[str, Any] = {"key": on_device(fed[1]), "position": on_device(fed[2])}
        pixels, mean, crop, window = _decode(encoded, spec, nodes)
        if nodes is not None and nodes.vflip is not None:
            # flip the crop itself: both views, every paste and its label box see one image
            pixels = fn.flip(pixels, horizontal=0, vertical=nodes.vflip)
        if window is not None:
            outputs["crop"] = on_device(fn.cast(fn.cat(*window), dtype=types.INT32))
        # one coin per sample, drawn on the host: the clean view is flipped like the augmented
        mirror = nodes.flip if nodes is not None else None
        clean_pixels = pixels
        if spec.auto_augment is not None:
            # HWC uint8: the Keep paste view
            pixels = spec.auto_augment.apply(pixels)

        def plain(view: Any) -> Any:
            """``view`` normalized, flipped and (val) centre-cropped, CHW."""
            return normalize(
                view,
                mean=mean,
                std=spec.std,
                mirror=mirror,
                crop=crop,
                layout="CHW",
                half=spec.half,
            )

        if spec.augments and nodes is not None:
            images = augment_graph(pixels, nodes, mirror, mean, spec)
        else:
            images = plain(pixels)
        if spec.keep_clean:
            outputs["clean"] = plain(clean_pixels)
        if params is not None and nodes is not None:
            outputs.update(params.outputs(nodes, spec.device))
        return (images, *outputs.values())

    pipe = graph()
    names = ["images", "key", "position"]
    if spec.train and spec.preset.host_window:
        names.append("crop")
    if spec.keep_clean:
        names.append("clean")
    if params is not None:
        names += params.output_names
    return pipe, names


def _decode(
    encoded: Any, spec: PipelineSpec, nodes: ParamNodes | None
) -> tuple[Any, Any, tuple[int, int] | None, Any]:
    """Decode and crop ``encoded`` as ``spec``'s preset says, with the host-fed preset draws
    of ``nodes`` (training).

    Returns:
        ``(pixels, mean, crop, window)``: HWC uint8 pixels (train: the crop of ``spec.size``
        after the preset's colour ops; val: resized, still to be centre-cropped), the
        normalization mean (a per-sample node under PCA lighting), the centre crop that
        normalization takes (val only, else None) and the random-resized crop window
        (``(anchor, size)`` nodes, else None).
    """
    hw = spec.hw_decoder_load
    if not spec.train or nodes is None:
        pixels = decode_val(encoded, spec.preset, device=spec.device, size=spec.size, hw_load=hw)
        return pixels, spec.mean, spec.size, None
    pixels, window = decode_train(
        encoded, spec.preset, nodes.preset, device=spec.device, size=spec.size, hw_load=hw
    )
    # the preset's colour ops are part of both views; one draw drives both
    pixels = color_ops(pixels, spec.preset, nodes.preset)
    return pixels, normalize_mean(spec.preset, spec.mean, nodes.preset), None, window
