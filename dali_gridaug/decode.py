"""Stage 2, decode/crop: JPEG bytes → cropped HWC uint8 pixels → flipped, normalized float
images (CHW on the loader's path, HWC where asked).

On a GPU the decoder is DALI's ``mixed`` nvJPEG decoder (hardware JPEG decoder where the GPU
has one); without one every op runs on DALI's CPU backend with the same semantics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

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
    images = decode_random_crop(encoded, device=device, scale=scale, ratio=ratio, hw_load=hw_load)
    return resize_to(images, size)


#: Attempts of the random-resized crop (torchvision's ``RandomResizedCrop.get_params``).
RRC_ATTEMPTS: int = 10


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


def decode_window(
    encoded: object,
    window: object,
    *,
    device: str,
    size: tuple[int, int],
    hw_load: float = HW_DECODER_LOAD,
    interpolation: str | object = "bilinear",
) -> object:
    """Decode only ``window`` (``(anchor, size)`` of :func:`rrc_window`) and resize it to
    ``size`` (antialiased, ``interpolation`` of :data:`INTERPOLATIONS`, bilinear as
    torchvision's ``RandomResizedCrop``; or a per-sample ``INTERP_TYPE`` node).

    Returns:
        HWC uint8 RGB DataNode of shape ``(size[0], size[1], 3)``.
    """
    from nvidia.dali import fn

    images = fn.decoders.image_slice(
        encoded,
        *window,
        axis_names="HW",
        normalized_anchor=False,
        normalized_shape=False,
        **_decoder_kwargs(device, hw_load),
    )
    return resize_to(images, size, interpolation)


def resize_to(
    images: object, size: tuple[int, int], interpolation: str | object = "bilinear"
) -> object:
    """Resize ``images`` to ``size`` (antialiased; ``interpolation`` of
    :data:`INTERPOLATIONS` or a per-sample ``INTERP_TYPE`` node).

    Returns:
        HWC DataNode of shape ``(size[0], size[1], C)``.
    """
    from nvidia.dali import fn

    interp = interp_type(interpolation) if isinstance(interpolation, str) else interpolation
    return fn.resize(images, size=list(size), interp_type=interp, antialias=True)


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
    interpolation: str = "bilinear",
    crop_mode: str = "center",
) -> object:
    """Decode and resize the shorter side to ``size / crop_pct`` (224 → 256; ``crop_mode``
    ``"center"``), or each side to ``floor(side / crop_pct)`` (``"squash"``, timm's: the
    aspect ratio is not kept); the centre crop happens in :func:`normalize`.

    Returns:
        HWC uint8 RGB DataNode (``hw_load`` as :func:`decode_train`).
    """
    from nvidia.dali import fn

    if crop_mode == "squash":
        target = {"size": [math.floor(side / crop_pct) for side in size]}
    else:
        target = {"resize_shorter": round(min(size) / crop_pct)}
    return fn.resize(
        decode(encoded, device=device, hw_load=hw_load),
        **target,
        interp_type=interp_type(interpolation),
        antialias=True,
    )


#: timm's ``interpolation`` names → DALI's resize filters (always antialiased when shrinking).
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
#: The filters timm's ``"random"`` picks from per sample, in the order of the host draw's
#: index (timm's ``_RANDOM_INTERPOLATION``).
RANDOM_INTERPOLATIONS = ("bilinear", "bicubic")


def interp_type(interpolation: str) -> Any:
    """DALI's ``types.DALIInterpType`` for a name of :data:`INTERPOLATIONS`."""
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
    :data:`RANDOM_INTERPOLATIONS` drawn on the host.
    """
    from nvidia.dali import fn, types

    lo, hi = (int(interp_type(name)) for name in RANDOM_INTERPOLATIONS)
    return fn.cast(index * (hi - lo) + lo, dtype=types.INTERP_TYPE)


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
