"""Keyed (counter-based) random draws of the Keep stage, batched torch on the batch's device.

Every per-sample draw of :class:`~dali_gridaug.saliency.keep.KeepStage` is a pure function of
``(seed, epoch, position, stream, j)``: ``position`` is the sample's place in the epoch's global
order (:attr:`dali_gridaug.batch.Batch.position`, the same at any world size), ``stream``
names the quantity drawn (:class:`Stream`) and ``j`` counts the values of that quantity for
one sample. So a file gets the same Keep draws whatever its rank, batch or batch size, and no
generator state exists: nothing to save in a checkpoint, nothing to reseed on a resume.

The hash is SplitMix64 (Steele, Lea and Flood, 2014): its 64-bit finalizer ``mix64`` is a
bijection, here evaluated with int64 torch ops (multiplication wraps modulo ``2^64``; ``>>``
on int64 is arithmetic, so logical shifts are emulated by masking the sign-extended bits).

- ``sample_keys(seed, epoch, position)``: ``mix64(H(seed, epoch) + position)``, one int64 per
  sample; ``H`` is the same hash on host integers, so no host value is copied to the device.
  For a fixed ``(seed, epoch)`` it is a bijection of ``position``: distinct positions of an
  epoch never share a key.
- ``uniform(keys, stream, n)``: ``(B, n)`` float64 in ``[0, 1)`` with 53 random bits each,
  the SplitMix64 sequence started at ``mix64(key ^ H(stream))``.

Everything is elementwise or a sort over the batch's own tensors: no host synchronisation,
no per-sample Python loop.
"""

from __future__ import annotations

import enum
import math

import torch

_M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15  # 2^64 / golden ratio, SplitMix64's increment
_MUL1 = 0xBF58476D1CE4E5B9
_MUL2 = 0x94D049BB133111EB
_DOMAIN = 0x4B656570  # "Keep": separates these keys from any other use of the seed

#: Candidates per Gamma draw of :func:`beta` (Marsaglia–Tsang accepts ≥ 95 % of them for
#: shape ≥ 1, so all fail with probability below 0.05^8 ≈ 4e-11).
GAMMA_CANDIDATES = 8


class Stream(enum.IntEnum):
    """The quantities the Keep stage draws, each from its own keyed stream."""

    BOX = 1  # box / window choice (inverse CDF over the eligible candidates)
    OFFSET_Y = 2  # low-resolution saliency: row offset of the upscaled position
    OFFSET_X = 3  # low-resolution saliency: column offset
    GRID_TILE = 4  # GridMask candidate periods, (B, k)
    GRID_DEGREES = 5  # GridMask candidate rotations
    GRID_SHIFT_X = 6  # GridMask candidate x offsets
    GRID_SHIFT_Y = 7  # GridMask candidate y offsets
    GRID_CHOICE = 8  # which GridMask candidate is kept
    CUTMIX_LAMBDA = 9  # KeepCutMix λ ~ Beta(α, α)
    CUTMIX_PARTNER = 10  # KeepCutMix partner permutation (argsort within the batch)


def _signed(value: int) -> int:
    """An unsigned 64-bit host integer as the int64 with the same bits."""
    value &= _M64
    return value - (1 << 64) if value >= 1 << 63 else value


def mix64_int(value: int) -> int:
    """SplitMix64's finalizer on a host integer (taken modulo ``2^64``); unsigned result."""
    z = value & _M64
    z = ((z ^ (z >> 30)) * _MUL1) & _M64
    z = ((z ^ (z >> 27)) * _MUL2) & _M64
    return z ^ (z >> 31)


def _shr(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 bits (torch's ``>>`` sign-extends)."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def mix64(x: torch.Tensor) -> torch.Tensor:
    """SplitMix64's finalizer, elementwise on an int64 tensor (the bits of :func:`mix64_int`)."""
    x = (x ^ _shr(x, 30)) * _signed(_MUL1)
    x = (x ^ _shr(x, 27)) * _signed(_MUL2)
    return x ^ _shr(x, 31)


def host_key(*words: int) -> int:
    """Hash of a sequence of host integers (each taken modulo ``2^64``), as a signed int64.

    SplitMix64 steps from ``h = mix64(DOMAIN)``: ``h ← mix64(h + w + γ)`` for each word ``w``
    (``γ`` = SplitMix64's increment, all modulo ``2^64``); ``host_key()`` is ``mix64(DOMAIN)``.
    """
    h = mix64_int(_DOMAIN)
    for w in words:
        h = mix64_int(h + (w & _M64) + _GOLDEN)
    return _signed(h)


def sample_keys(seed: int, epoch: int, position: torch.Tensor) -> torch.Tensor:
    """Per-sample keys ``mix64(H(seed, epoch) + position)``.

    Args:
        seed: run seed, a host integer.
        epoch: epoch number, a host integer.
        position: ``(B,)`` int64 positions in the epoch's global order, on any device.

    Returns:
        ``(B,)`` int64 keys on the device of ``position``.
    """
    return mix64(position.to(torch.int64) + host_key(seed, epoch))


def stream_keys(keys: torch.Tensor, stream: int) -> torch.Tensor:
    """``(B,)`` int64 keys of ``stream`` for the sample keys ``keys`` (a bijection of them)."""
    return mix64(keys ^ host_key(int(stream)))


def uniform(keys: torch.Tensor, stream: int, n: int) -> torch.Tensor:
    """``n`` uniforms per sample: ``u[b, j]`` depends on ``(keys[b], stream, j)`` only.

    Args:
        keys: ``(B,)`` int64 from :func:`sample_keys`.
        stream: a :class:`Stream`.
        n: values per sample, ``≥ 0``.

    Returns:
        ``(B, n)`` float64 in ``[0, 1)``, multiples of ``2^-53``.
    """
    base = stream_keys(keys, stream)[:, None]
    j = torch.arange(1, n + 1, dtype=torch.int64, device=keys.device)
    bits = mix64(base + j * _signed(_GOLDEN))
    return _shr(bits, 11).to(torch.float64) * 2.0**-53


def integers_below(keys: torch.Tensor, stream: int, high: torch.Tensor) -> torch.Tensor:
    """``U{0 … high − 1}`` as ``floor(u·high)``, ``u`` from :func:`uniform` (exact for
    ``high < 2^52``).

    Args:
        keys: ``(B,)`` int64 sample keys.
        stream: a :class:`Stream`.
        high: ``(B, n)`` int64 bounds ``≥ 1``.

    Returns:
        ``(B, n)`` int64.
    """
    u = uniform(keys, stream, high.shape[1])
    return torch.floor(u * high.to(torch.float64)).to(torch.int64).minimum(high - 1)


def permutation(keys: torch.Tensor, stream: int) -> torch.Tensor:
    """A uniformly random permutation of the batch: the (stable) argsort of one keyed uniform
    per sample, so it is a function of the batch's sample keys (their order included).

    Returns:
        ``(B,)`` int64.
    """
    u = uniform(keys, stream, 1)[:, 0]
    return torch.sort(u, stable=True).indices


def inverse_cdf(weights: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """One index per row with probability proportional to ``weights``, by inverse CDF.

    ``cumsum`` in float64, then the first column whose CDF exceeds ``u · total``
    (``searchsorted(..., right=True)``). An index of zero weight is never returned: for
    ``u < 1`` the rounded product ``u · total`` stays below ``total`` (it is at most half an
    ulp from the exact ``u · total ≤ total − total·2^-53``), so the first CDF value above it
    is the CDF's rise at a positive weight. Rows are independent: a row's index does not
    depend on the other rows of the batch.

    Args:
        weights: ``(B, N)`` non-negative float, every row with a positive entry.
        u: ``(B,)`` float64 uniforms in ``[0, 1)``.

    Returns:
        ``(B,)`` int64 column indices.
    """
    w = weights.to(torch.float64)
    cdf = w.cumsum(dim=1)
    target = (u * cdf[:, -1])[:, None]
    return torch.searchsorted(cdf, target, right=True)[:, 0]


def _standard_normal(u1: torch.Tensor, u2: torch.Tensor) -> torch.Tensor:
    """Box–Muller: ``u1, u2`` uniforms in ``[0, 1)`` → N(0, 1) (``1 − u1`` is log-safe)."""
    return torch.sqrt(-2.0 * torch.log1p(-u1)) * torch.cos((2.0 * math.pi) * u2)


def _log_gamma_draw(u: torch.Tensor, alpha: float) -> torch.Tensor:
    """``log X``, ``X ~ Gamma(α, 1)``, from ``(B, 3·GAMMA_CANDIDATES + 1)`` uniforms.

    ``X = Y·U^(1/α)`` with ``Y ~ Gamma(α + 1)`` by Marsaglia and Tsang (2000): candidates
    ``v = (1 + c·z)^3`` with ``d = α + 2/3``, ``c = 1/sqrt(9d)``, accepted when ``v > 0`` and
    ``log u < z²/2 + d − d·v + d·log v``; the first accepted of ``GAMMA_CANDIDATES`` is used.
    If none is (probability < 4e-11) the first candidate's ``d·v`` (the Wilson–Hilferty
    approximation, floored at ``d·2^-53``) stands in. The boost ``U^(1/α)`` is added in log
    space, so a tiny α gives a very negative ``log X``, never ``log 0``.
    """
    m = GAMMA_CANDIDATES
    d = alpha + 2.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    z = _standard_normal(u[:, 0:m], u[:, m : 2 * m])
    accept_u = u[:, 2 * m : 3 * m]
    v = (1.0 + c * z) ** 3
    safe_v = v.clamp_min(2.0**-53)
    ok = (v > 0) & (torch.log1p(-accept_u) < 0.5 * z * z + d - d * safe_v + d * torch.log(safe_v))
    index = torch.arange(m, device=u.device)
    first = torch.where(ok, index, m).amin(dim=1) % m  # the first accepted, else 0
    log_y = math.log(d) + torch.log(safe_v.gather(1, first[:, None])[:, 0])
    return log_y + torch.log1p(-u[:, 3 * m]) / alpha


def beta(keys: torch.Tensor, stream: int, alpha: float) -> torch.Tensor:
    """``(B,)`` float64 draws of Beta(α, α) as ``X / (X + Y)``, X, Y ~ Gamma(α) (independent,
    from one keyed stream), evaluated as ``sigmoid(log X − log Y)`` (no 0/0 for a tiny α).

    Args:
        keys: ``(B,)`` int64 sample keys.
        stream: a :class:`Stream`.
        alpha: concentration ``α > 0``.
    """
    per = 3 * GAMMA_CANDIDATES + 1
    u = uniform(keys, stream, 2 * per)
    log_x = _log_gamma_draw(u[:, :per], alpha)
    log_y = _log_gamma_draw(u[:, per:], alpha)
    return torch.sigmoid(log_x - log_y)
