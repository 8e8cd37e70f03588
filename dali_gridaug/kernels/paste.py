"""Mixing two images by a visibility mask."""

from __future__ import annotations

from types import ModuleType
from typing import Any

Array = Any


def mix_by_mask(
    xp: ModuleType, images: Array, visible: Array, partner: Array | None = None, fill: Array = 0.0
) -> Array:
    """``out = visible·images + (1 − visible)·other``, batched.

    Args:
        xp: numpy or cupy.
        images: ``(B, H, W, C)`` HWC images (any float dtype; the output has the same dtype).
        visible: ``(B, H, W)`` 0/1 visibility mask (1 = the pixel of ``images`` stays).
        partner: ``(B,)`` int batch positions of the image that fills dropped pixels; ``None``
            fills with ``fill`` (a scalar or an array broadcastable to ``(B, H, W, C)``).
        fill: value of dropped pixels when ``partner`` is ``None``: a Python scalar (cast to
            the images' dtype; never uploaded) or an array of ``xp``.

    Returns:
        ``(B, H, W, C)`` new array; the inputs are not modified.
    """
    visible = visible[..., None].astype(bool)
    if partner is not None:
        other = images[xp.asarray(partner)]
    elif isinstance(fill, (int, float)):  # a Python scalar: no host→device upload
        other = fill
    else:
        other = xp.asarray(fill, images.dtype)
    return xp.where(visible, images, other).astype(images.dtype, copy=False)
