"""Stage 2, decode/crop: JPEG bytes → cropped HWC uint8 pixels → flipped, normalized float
images (CHW on the loader's path, HWC where asked).

On a GPU the decoder is DALI's ``mixed`` nvJPEG decoder (hardware JPEG decoder where the GPU
has one); without one every op runs on DALI's CPU backend with the same semantics.
"""

from __future__ import annotations

from collections.abc import Sequence

from dali_gridaug.constants import (
    CROP_PCT,
    HW_DECODER_LOAD,
    PREALLOCATE_HEIGHT_HINT,
    PREALLOCATE_WIDTH_HINT,
    RRC_RATIO,
    RRC_SCALE,
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


def decode_train(
    encoded: object,
    *,
    device: str,
    size: tuple[int, int],
    scale: tuple[float, float] = RRC_SCALE,
    ratio: tuple[float, float] = RRC_RATIO,
    hw_load: float = HW_DECODER_LOAD,
) -> object:
    """Decode with a random-resized crop (area ∈ ``scale``, aspect ∈ ``ratio``) to ``size``;
    ``hw_load`` is the share of JPEGs sent to the GPU's hardware decoder (where it has one).

    Returns:
        HWC uint8 RGB DataNode of shape ``(size[0], size[1], 3)`` (GPU when ``device="gpu"``).
    """
    from nvidia.dali import fn, types

    images = decode_random_crop(encoded, device=device, scale=scale, ratio=ratio, hw_load=hw_load)
    return fn.resize(images, size=list(size), interp_type=types.INTERP_LINEAR, antialias=True)


#: Attempts of the random-resized crop (torchvision's ``RandomResizedCrop.get_params``).
RRC_ATTEMPTS: int = 10


def rrc_window(
    shape: object, u: object, scale: tuple[float, float], ratio: tuple[float, float]
) -> object:
    """Torchvision's ``RandomResizedCrop.get_params`` on DALI arithmetic, from host uniforms.

    Attempt ``k`` takes area ``A·(s₀ + u_k(s₁ − s₀))`` and aspect ``exp(log r₀ + v_k·log(r₁/r₀))``,
    ``w = round(√(area·aspect))``, ``h = round(√(area/aspect))``; the first attempt with
    ``0 < w ≤ W`` and ``0 < h ≤ H`` wins, at offsets ``y = ⌊u_y(H − h + 1)⌋``,
    ``x = ⌊u_x(W − w + 1)⌋``; with none, the centre crop of the whole image clamped to the
    aspect range (torchvision's fallback).

    Args:
        shape: CPU ``DataNode`` of each image's ``(H, W, C)`` (``fn.peek_image_shape``).
        u: CPU ``DataNode`` ``(2·A + 2,)`` float32 uniforms in [0, 1) per sample: ``A`` area
            draws, ``A`` aspect draws, then ``u_y``, ``u_x``.
        scale: area fraction range.
        ratio: aspect (w/h) range.

    Returns:
        CPU ``DataNode`` ``(4,)`` float32 per sample: ``(y, x, h, w)`` in source pixels.
    """
    import math

    from nvidia.dali import fn, types
    from nvidia.dali import math as dmath

    a = RRC_ATTEMPTS
    hw = fn.cast(shape[0:2], dtype=types.FLOAT)
    height, width = hw[0], hw[1]
    lr0, lr1 = math.log(ratio[0]), math.log(ratio[1])
    area = height * width * (scale[0] + u[0:a] * (scale[1] - scale[0]))
    aspect = dmath.exp(lr0 + u[a : 2 * a] * (lr1 - lr0))
    w = dmath.floor(dmath.sqrt(area * aspect) + 0.5)
    h = dmath.floor(dmath.sqrt(area / aspect) + 0.5)
    fits = (w <= width) & (h <= height) & (w > 0) & (h > 0)
    order = fn.constant(fdata=[float(k) for k in range(a)], shape=[a])
    first = fn.reductions.min(order + a * (1 - fn.cast(fits, dtype=types.FLOAT)))
    pick = fn.cast(order == first, dtype=types.FLOAT)  # one-hot of the first fit (none: 0)
    found = fn.cast(first < a, dtype=types.FLOAT)
    # torchvision's fallback: the whole image, clamped to the aspect range, centred
    in_ratio = width / height
    narrow = fn.cast(in_ratio < ratio[0], dtype=types.FLOAT)
    wide = fn.cast(in_ratio > ratio[1], dtype=types.FLOAT)
    fw = wide * dmath.floor(height * ratio[1] + 0.5) + (1 - wide) * width
    fh = narrow * dmath.floor(width / ratio[0] + 0.5) + (1 - narrow) * height
    h_out = found * fn.reductions.sum(h * pick) + (1 - found) * fh
    w_out = found * fn.reductions.sum(w * pick) + (1 - found) * fw
    y = found * dmath.floor(u[2 * a] * (height - h_out + 1)) + (1 - found) * dmath.floor(
        (height - h_out) / 2
    )
    x = found * dmath.floor(u[2 * a + 1] * (width - w_out + 1)) + (1 - found) * dmath.floor(
        (width - w_out) / 2
    )
    return fn.stack(y, x, h_out, w_out)


def decode_window(
    encoded: object,
    window: object,
    *,
    device: str,
    size: tuple[int, int],
    hw_load: float = HW_DECODER_LOAD,
) -> object:
    """Decode only ``window`` (``(y, x, h, w)`` of :func:`rrc_window`) and resize it to
    ``size`` (antialiased bilinear, as torchvision's ``RandomResizedCrop``).

    Returns:
        HWC uint8 RGB DataNode of shape ``(size[0], size[1], 3)``.
    """
    from nvidia.dali import fn, types

    images = fn.decoders.image_slice(
        encoded,
        window[0:2],
        window[2:4],
        axis_names="HW",
        normalized_anchor=False,
        normalized_shape=False,
        **_decoder_kwargs(device, hw_load),
    )
    return fn.resize(images, size=list(size), interp_type=types.INTERP_LINEAR, antialias=True)


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
        num_attempts=10,
        **_decoder_kwargs(device, hw_load),
    )


def decode(encoded: object, *, device: str, hw_load: float = HW_DECODER_LOAD) -> object:
    """Decode to the full image (``hw_load`` as :func:`decode_train`).

    Returns:
        HWC uint8 RGB DataNode.
    """
    from nvidia.dali import fn

    return fn.decoders.image(encoded, **_decoder_kwargs(device, hw_load))


def decode_val(
    encoded: object,
    *,
    device: str,
    size: tuple[int, int],
    crop_pct: float = CROP_PCT,
    hw_load: float = HW_DECODER_LOAD,
) -> object:
    """Decode and resize the shorter side to ``size / crop_pct`` (224 → 256); the centre crop
    happens in :func:`normalize`.

    Returns:
        HWC uint8 RGB DataNode (``hw_load`` as :func:`decode_train`).
    """
    from nvidia.dali import fn, types

    return fn.resize(
        decode(encoded, device=device, hw_load=hw_load),
        resize_shorter=round(min(size) / crop_pct),
        interp_type=types.INTERP_LINEAR,
        antialias=True,
    )


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
