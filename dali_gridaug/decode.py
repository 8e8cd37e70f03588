"""Stage 2, decode/crop: every DALI op of the stage, built from a
:class:`~dali_gridaug.presets.Preset` (data) and its host-fed per-sample draws
(:func:`~dali_gridaug.params.preset_schema`).

Layouts, in graph order:

- :func:`decode_train`: JPEG bytes → HWC uint8 RGB of the output size, the preset's crop
  (random-resized: DALI's decoder draws the window, or under ``invariant_crop`` the host
  does, :func:`rrc_window`, and only the window is decoded; pad: :func:`pad_crop`);
- :func:`decode_val`: JPEG bytes → HWC uint8 RGB resized (shorter side to
  ``size / crop_pct``, or each side under ``crop_mode="squash"``), not yet centre-cropped;
- :func:`color_ops`: the train colour jitter, HWC uint8 → HWC uint8;
- :func:`normalize`: ``crop_mirror_normalize``, HWC uint8 → float32 (float16 when asked),
  ``(x − mean) / std`` (PCA lighting through :func:`normalize_mean`'s per-sample mean), the
  val centre crop, the horizontal flip; in the layout asked: CHW on the loader's path
  (:mod:`dali_gridaug.pipeline`, :mod:`dali_gridaug.augment.graph`).

On a GPU the decoder is DALI's ``mixed`` nvJPEG decoder (hardware JPEG decoder where the GPU
has one); without one every op runs on DALI's CPU backend with the same semantics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from dali_gridaug.constants import (
    HW_DECODER_LOAD,
    PREALLOCATE_HEIGHT_HINT,
    PREALLOCATE_WIDTH_HINT,
    RRC_ATTEMPTS,
    RRC_RATIO,
    RRC_SCALE,
)
from dali_gridaug.presets import RANDOM_INTERPOLATIONS, Preset

#: Luma weights of torchvision's ``rgb_to_grayscale`` (ITU-R 601-2).
_GRAY = (0.299, 0.587, 0.114)


def decode_train(
    encoded: Any,
    preset: Preset,
    draws: dict[str, Any],
    *,
    device: str,
    size: tuple[int, int],
    hw_load: float = HW_DECODER_LOAD,
) -> tuple[Any, Any]:
    """Decode and crop for training as ``preset`` says (no flip: :func:`normalize` flips),
    with the host-fed ``draws`` of :func:`~dali_gridaug.params.preset_schema` (name → CPU
    node; ``{}`` for a preset that draws nothing on the host, e.g. ``IMAGENET``).

    The random-resized crop (area ∈ ``preset.scale``, aspect ∈ ``preset.ratio``) is resized
    to ``size`` with ``preset.interpolation`` (antialiased; per sample under ``"random"``);
    the pad crop takes ``size`` from the padded image. ``hw_load`` is the share of JPEGs sent
    to the GPU's hardware decoder (where it has one).

    Returns:
        ``(pixels, window)``: HWC uint8 RGB ``DataNode`` of shape ``(size[0], size[1], 3)``
        (GPU when ``device="gpu"``), and the crop window ``(anchor, size)``, each ``(2,)``
        float32 in source pixels (the host-drawn random-resized crop, ``invariant_crop``;
        else None).
    """
    from nvidia.dali import fn, types

    if preset.crop == "pad":
        images = decode(encoded, device=device, hw_load=hw_load)
        return pad_crop(images, fn.peek_image_shape(encoded), preset, size, draws["pad"]), None
    interp = random_interp_type(draws["interp"]) if preset.random_filter else preset.interpolation
    window = None
    if preset.host_window:
        window = rrc_window(fn.peek_image_shape(encoded, dtype=types.FLOAT64), draws)
        images = decode_window(encoded, window, device=device, hw_load=hw_load)
    else:
        images = decode_random_crop(
            encoded, device=device, scale=preset.scale, ratio=preset.ratio, hw_load=hw_load
        )
    return resize_to(images, size, interp), window


def decode_val(
    encoded: Any,
    preset: Preset,
    *,
    device: str,
    size: tuple[int, int],
    hw_load: float = HW_DECODER_LOAD,
) -> Any:
    """Decode for evaluation: resize the shorter side to ``size / crop_pct`` (224 → 256;
    ``preset.crop_mode`` ``"center"``), or each side to ``floor(side / crop_pct)``
    (``"squash"``, timm's: the aspect ratio is not kept), or nothing when ``crop_pct`` is None;
    with ``preset.interpolation`` (bilinear under ``"random"``, timm's rule without
    augmentation), antialiased. The centre crop to ``size`` happens in :func:`normalize`.

    Returns:
        HWC uint8 RGB ``DataNode`` (``hw_load`` as :func:`decode_train`).
    """
    from nvidia.dali import fn

    images = decode(encoded, device=device, hw_load=hw_load)
    pct = preset.crop_pct
    if pct is None:
        return images
    interp = "bilinear" if preset.interpolation == "random" else preset.interpolation
    if preset.crop_mode == "squash":
        return resize_to(images, (math.floor(size[0] / pct), math.floor(size[1] / pct)), interp)
    return fn.resize(
        images,
        resize_shorter=round(min(size) / pct),
        interp_type=interp_type(interp),
        antialias=True,
    )


def decode(encoded: object, *, device: str, hw_load: float = HW_DECODER_LOAD) -> object:
    """Decode to the full image (``hw_load`` as :func:`decode_train`).

    Returns:
        HWC uint8 RGB DataNode.
    """
    from nvidia.dali import fn

    return fn.decoders.image(encoded, **_decoder_kwargs(device, hw_load))


def decode_random_crop(
    encoded: object,
    *,
    device: str,
    scale: tuple[float, float] = RRC_SCALE,
    ratio: tuple[float, float] = RRC_RATIO,
    hw_load: float = HW_DECODER_LOAD,
) -> object:
    """Decode only a random crop window (area ∈ ``scale``, aspect ∈ ``ratio``), not resized.

    Returns:
        HWC uint8 RGB DataNode of the crop's own size.
    """
    from nvidia.dali import fn

    return fn.decoders.image_random_crop(
        encoded,
        random_area=list(scale),
        random_aspect_ratio=list(ratio),
        num_attempts=RRC_ATTEMPTS,
        **_decoder_kwargs(device, hw_load),
    )


def decode_window(
    encoded: object, window: object, *, device: str, hw_load: float = HW_DECODER_LOAD
) -> object:
    """Decode only ``window`` (``(anchor, size)`` of :func:`rrc_window`), not resized.

    Returns:
        HWC uint8 RGB DataNode of the window's own size.
    """
    from nvidia.dali import fn

    return fn.decoders.image_slice(
        encoded,
        *window,
        axis_names="HW",
        normalized_anchor=False,
        normalized_shape=False,
        **_decoder_kwargs(device, hw_load),
    )


def _decoder_kwargs(device: str, hw_load: float) -> dict[str, object]:
    """Decoder arguments; ``jpeg_fancy_upsampling`` on both decoders so the CPU (libjpeg-turbo)
    and GPU (nvJPEG) paths upsample chroma alike and give the same pixels.
    """
    from nvidia.dali import types

    kw: dict[str, object] = dict(
        device="mixed" if device == "gpu" else "cpu",
        output_type=types.RGB,
        jpeg_fancy_upsampling=True,
    )
    if device == "gpu":
        kw.update(
            hw_decoder_load=hw_load,
            preallocate_width_hint=PREALLOCATE_WIDTH_HINT,
            preallocate_height_hint=PREALLOCATE_HEIGHT_HINT,
            device_memory_padding=211_025_920,
            host_memory_padding=140_544_512,
        )
    return kw


def rrc_draws(
    u: np.ndarray, scale: tuple[float, float], ratio: tuple[float, float]
) -> dict[str, np.ndarray]:
    """The host half of torchvision's ``RandomResizedCrop.get_params``: from ``(B, 2A + 2)``
    uniforms in [0, 1), the per-sample arrays :func:`rrc_window` takes.

    Attempt ``k`` has area fraction ``f = s₀ + u(s₁ − s₀)`` and aspect (w/h)
    ``a = exp(log r₀ + v·log(r₁/r₀))``; for an image of area ``A`` it is
    ``h = round(√A·√(f/a))``, ``w = round(√A·√(f·a))``.

    Returns:
        ``rrc`` ``(B, A, 2)`` float32 ``(√(f/a), √(f·a))``; ``rrc_rank`` ``(B, A)`` float32
        ``A − k`` (the first attempt ranks highest); ``rrc_u`` ``(B, 2)`` float32 offset
        uniforms minus 0.5; ``rrc_fallback`` ``(B, 2)`` float32 ``(1/r₀, r₁)``.
    """
    b, a = len(u), RRC_ATTEMPTS
    f = scale[0] + u[:, :a] * (scale[1] - scale[0])
    lr0, lr1 = np.log(ratio[0]), np.log(ratio[1])
    aspect = np.exp(lr0 + u[:, a : 2 * a] * (lr1 - lr0))
    return {
        "rrc": np.stack([np.sqrt(f / aspect), np.sqrt(f * aspect)], -1).astype(np.float32),
        "rrc_rank": np.broadcast_to(np.arange(a, 0, -1, dtype=np.float32), (b, a)).copy(),
        "rrc_u": (u[:, 2 * a :] - 0.5).astype(np.float32),
        "rrc_fallback": np.tile(np.array([1 / ratio[0], ratio[1]], np.float32), (b, 1)),
    }


def rrc_window(shape: object, draws: dict[str, object]) -> object:
    """The graph half of torchvision's ``RandomResizedCrop.get_params`` (see
    :func:`rrc_draws`), exact: the first attempt with ``0 < w ≤ W`` and ``0 < h ≤ H`` wins,
    at ``y = ⌊u_y(H − h + 1)⌋``, ``x = ⌊u_x(W − w + 1)⌋``; with none, the whole image clamped
    to the aspect range, centred. Vectorized over the attempts so the graph holds about 30
    small CPU operators (a sample of ``h, w ≥ 1`` needs ``H·W ≥ 9``; smaller images may take
    a zero-size attempt torchvision skips).

    Args:
        shape: CPU ``DataNode`` of each image's ``(H, W, C)`` (``fn.peek_image_shape``,
            float64).
        draws: the CPU nodes of :func:`rrc_draws`' arrays, by name.

    Returns:
        ``(anchor, size)``: CPU ``DataNode`` s ``(2,)`` float32 per sample, ``(y, x)`` and
        ``(h, w)`` in source pixels.
    """
    from nvidia.dali import fn, types
    from nvidia.dali import math as dmath

    hw = shape[0:2]
    area = shape[0] * shape[1]  # exact in float64
    root = fn.cast(dmath.sqrt(area), dtype=types.FLOAT)  # (reductions.sum takes no float64)
    d = dmath.floor(draws["rrc"] * root + 0.5)  # (A, 2): each attempt's (h, w)
    fits = fn.reductions.min(fn.cast(d <= hw, dtype=types.FLOAT), axes=[1])
    score = fits * draws["rrc_rank"]
    best = fn.reductions.max(score)
    pick = fn.reshape(score == best, shape=[RRC_ATTEMPTS, 1])
    chosen = fn.reductions.sum(d * pick, axes=[0])
    found = best > 0
    # torchvision's fallback: h = min(H, round(W/r₀)), w = min(W, round(H·r₁)), centred
    fallback = dmath.min(hw, dmath.floor(area / hw * draws["rrc_fallback"] + 0.5))
    final = fallback + found * (chosen - fallback)
    offset = dmath.floor((0.5 + found * draws["rrc_u"]) * (hw - final + found))
    return fn.cast(offset, dtype=types.FLOAT), fn.cast(final, dtype=types.FLOAT)


def pad_crop(images: Any, shape: Any, preset: Preset, size: tuple[int, int], u: Any) -> Any:
    """As torchvision ``RandomCrop(size, padding=p)``: offsets ``i ~ U{0 … H + 2p − th}``,
    ``j ~ U{0 … W + 2p − tw}`` into the padded image (sources at least ``size − 2p``).

    Args:
        images: HWC uint8 ``DataNode``.
        shape: CPU ``DataNode`` of each image's ``(H, W, C)`` (``fn.peek_image_shape``).
        preset: gives ``padding`` and ``fill``.
        size: ``(th, tw)`` output size.
        u: ``(2,)`` float32 uniforms in [0, 1) per sample (host-fed), the offsets' draws.

    Returns:
        HWC uint8 ``DataNode`` of shape ``(th, tw, 3)``.
    """
    from nvidia.dali import fn, types
    from nvidia.dali import math as dmath

    p = preset.padding
    slots = fn.cast(shape[0:2], dtype=types.FLOAT) + fn.cast(
        fn.constant(fdata=[2.0 * p - size[0] + 1, 2.0 * p - size[1] + 1], shape=[2]),
        dtype=types.FLOAT,
    )
    offset = fn.cast(dmath.floor(u * slots), dtype=types.INT32)  # into the padded image
    if preset.fill == "reflect":
        images = _reflect_pad(images, shape, p)
        start = offset
    else:
        start = offset - p
    return fn.slice(
        images,
        start=start,
        shape=list(size),
        axes=[0, 1],
        out_of_bounds_policy="pad",
        fill_values=0,
    )


def _reflect_pad(images: Any, shape: Any, p: int) -> Any:
    """Pad ``p`` pixels per side mirroring without the edge pixel (``numpy.pad`` "reflect"):
    padded column ``−k`` is column ``k``, ``W−1+k`` is ``W−1−k`` (needs ``p < H, W``).
    """
    from nvidia.dali import fn, types

    if p == 0:
        return images
    for axis, flip in ((1, {"horizontal": 1}), (0, {"vertical": 1, "horizontal": 0})):
        side = fn.cast(shape[axis : axis + 1], dtype=types.INT32)
        low = fn.slice(images, start=[1], shape=[p], axes=[axis])
        high = fn.slice(images, start=side - (p + 1), shape=[p], axes=[axis])
        images = fn.cat(fn.flip(low, **flip), images, fn.flip(high, **flip), axis=axis)
    return images


def resize_to(
    images: object, size: tuple[int, int], interpolation: str | object = "bilinear"
) -> object:
    """Resize ``images`` to ``size`` (antialiased; ``interpolation`` of
    :data:`~dali_gridaug.presets.INTERPOLATIONS` or a per-sample ``INTERP_TYPE`` node).

    Returns:
        HWC DataNode of shape ``(size[0], size[1], C)``.
    """
    from nvidia.dali import fn

    interp = interp_type(interpolation) if isinstance(interpolation, str) else interpolation
    return fn.resize(images, size=list(size), interp_type=interp, antialias=True)


def interp_type(interpolation: str) -> Any:
    """DALI's ``types.DALIInterpType`` for a name of
    :data:`~dali_gridaug.presets.INTERPOLATIONS`.
    """
    from nvidia.dali import types

    table = {
        "bilinear": types.INTERP_LINEAR,
        "bicubic": types.INTERP_CUBIC,
        "nearest": types.INTERP_NN,
    }
    return table[interpolation]


def random_interp_type(index: object) -> object:
    """Inside a pipeline definition: the per-sample ``INTERP_TYPE`` node (CPU, an argument
    input of ``fn.resize``) for ``index``, ``(B,)`` int32 indices into
    :data:`~dali_gridaug.presets.RANDOM_INTERPOLATIONS` drawn on the host.
    """
    from nvidia.dali import fn, types

    lo, hi = (int(interp_type(name)) for name in RANDOM_INTERPOLATIONS)
    return fn.cast(index * (hi - lo) + lo, dtype=types.INTERP_TYPE)


def color_ops(images: Any, preset: Preset, draws: dict[str, Any]) -> Any:
    """Apply ``preset.color_jitter`` (see :class:`~dali_gridaug.presets.ColorJitter`) to HWC
    uint8 images with the host-fed factors ``draws["jitter"]`` (``(3,)`` float32 per sample).

    Returns:
        HWC uint8 ``DataNode`` (the input itself when the preset has no jitter).
    """
    cj = preset.color_jitter
    if cj is None:
        return images
    from nvidia.dali import fn, types

    def factor(i: int) -> Any:
        f = draws["jitter"][i]
        return f.gpu() if images.device == "gpu" else f

    b, c, s = factor(0), factor(1), factor(2)
    gray = fn.coord_transform(images, M=list(_GRAY))  # HW1 float
    means = fn.reshape(fn.reductions.mean(images, axes=[0, 1]), shape=[1, 3])
    m = fn.reshape(fn.coord_transform(means, M=list(_GRAY)), shape=[1])
    out = (images * s + gray * (1.0 - s)) * (b * c) + m * (b * (1.0 - c))
    return fn.cast(out, dtype=types.UINT8)  # rounds to nearest, saturates to [0, 255]


def normalize_mean(preset: Preset, mean: Sequence[float], draws: dict[str, Any]) -> Any:
    """The per-channel mean to normalize with: ``mean`` itself, or with ``preset.lighting``
    a per-sample CPU ``DataNode`` ``mean − eigvec·(α·eigval)·255`` (``(x + shift − mean)/std``
    equals ``(x − (mean − shift))/std``, so lighting costs no pass over the pixels), α the
    host-fed ``draws["lighting"]``.
    """
    if preset.lighting is None:
        return tuple(mean)
    from nvidia.dali import fn

    alpha = fn.reshape(draws["lighting"], shape=[1, 3])
    shift = fn.coord_transform(
        alpha, M=(-preset.lighting.matrix()).ravel().tolist(), T=[float(v) for v in mean]
    )
    return fn.reshape(shift, shape=[3])


def normalize(
    images: object,
    *,
    mean: Sequence[float] | object,
    std: Sequence[float],
    mirror: object | None,
    crop: tuple[int, int] | None,
    layout: str,
    half: bool,
) -> object:
    """``(x − mean) / std`` per channel (0–255 units), optional centre ``crop``, and a
    horizontal flip where the per-sample ``mirror`` coin (a DataNode, or None) is 1.

    Returns:
        float32 (float16 when ``half``) DataNode in ``layout`` (``"HWC"`` or ``"CHW"``).
    """
    from nvidia.dali import fn, types

    kw: dict[str, object] = {}
    if crop is not None:
        kw.update(crop=list(crop), crop_pos_x=0.5, crop_pos_y=0.5)
    if mirror is not None:
        kw["mirror"] = mirror
    return fn.crop_mirror_normalize(
        images,
        dtype=types.FLOAT16 if half else types.FLOAT,
        output_layout=layout,
        mean=list(mean) if isinstance(mean, Sequence) else mean,  # or a per-sample DataNode
        std=list(std),
        **kw,
    )
