"""Mixing two images by a keep-mask."""

from __future__ import annotations

from types import ModuleType
from typing import Any

Array = Any


def mix_by_mask(
    xp: ModuleType, images: Array, keep: Array, partner: Array | None = None, fill: Array = 0.0
) -> Array:
    """``out = keep·images + (1 − keep)·other``, batched.

    Args:
        xp: numpy or cupy.
        images: ``(B, H, W, C)`` HWC images (any float dtype; the output has the same dtype).
        keep: ``(B, H, W)`` 0/1 keep-mask (1 = keep ``images``).
        partner: ``(B,)`` int batch positions of the image that fills dropped pixels; ``None``
            fills with ``fill`` (a scalar or an array broadcastable to ``(B, H, W, C)``).
        fill: value of dropped pixels when ``partner`` is ``None``.

    Returns:
        ``(B, H, W, C)`` new array; the inputs are not modified.
    """
    keep = keep[..., None].astype(bool)
    other = images[xp.asarray(partner)] if partner is not None else xp.asarray(fill, images.dtype)
    return xp.where(keep, images, other).astype(images.dtype, copy=False)
