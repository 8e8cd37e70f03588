"""Standard-normal noise from a seed that stays on the device.

A counter-based generator: element ``i`` of the output is a pure function of ``(seed, i)``
(a 32-bit integer hash, then the Box–Muller transform), so the noise needs no host-side
generator state, reads nothing back from the device, and is the same on NumPy and CuPy up to
the last bit of ``log``/``cos``/``sin``.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

Array = Any


def _hash32(xp: ModuleType, x: Array) -> Array:
    """Bijective 32-bit integer mix of each element of a ``uint32`` array (lowbias32)."""
    x = x ^ (x >> 16)
    x = x * xp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * xp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def normal_noise(xp: ModuleType, seed: Array, shape: tuple[int, ...], dtype: Any) -> Array:
    """Noise ``~ N(0, 1)`` of ``shape``, a function of ``seed`` alone.

    Args:
        xp: numpy or cupy.
        seed: integer array of ``xp`` whose first element is the seed (e.g. the ``(B, 1)``
            per-batch seed parameter, read from its first row); only its low 32 bits are used.
            It is never read on the host.
        shape: output shape; at most ``2**32`` elements.
        dtype: output float dtype (computed in float32).

    Returns:
        Array of ``shape`` and ``dtype``; equal seeds give equal arrays.
    """
    size = math.prod(shape)
    if size >= 2**32:
        raise ValueError(f"`shape` {shape} has {size} elements; at most 2**32 - 1")
    key = _hash32(xp, xp.asarray(seed).reshape(-1)[:1].astype(xp.uint32))
    pair = xp.arange((size + 1) // 2, dtype=xp.uint32) * xp.uint32(2)
    f32 = xp.float32
    scale = f32(2.0**-24)
    # 24-bit uniforms: u1 in (0, 1] (log-safe), u2 in [0, 1)
    u1 = ((_hash32(xp, pair ^ key) >> 8).astype(f32) + f32(1)) * scale
    u2 = (_hash32(xp, (pair + xp.uint32(1)) ^ key) >> 8).astype(f32) * scale
    radius = xp.sqrt(f32(-2) * xp.log(u1))
    angle = f32(2 * math.pi) * u2
    z = xp.concatenate([radius * xp.cos(angle), radius * xp.sin(angle)])
    return z[:size].reshape(shape).astype(dtype)
