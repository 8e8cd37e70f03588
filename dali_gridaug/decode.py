"""Stage 2, decode/crop: JPEG bytes → cropped, flipped, normalized HWC float images.

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
