"""The Keep stage's keyed random draws (dali_gridaug/saliency/keyed.py).

Oracles are independent of the implementation: SplitMix64's published output sequence, the
exact uniform / Beta distributions (chi-square and Kolmogorov–Smirnov tests against NumPy and
SciPy), and the joint histogram of draws with different keys for their independence.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from dali_gridaug.saliency import keyed
from tests.helpers import chi_square_p_ok

N = 40_000
#: SplitMix64's increment (Vigna's splitmix64.c) and the 64-bit mask
GAMMA, M64 = 0x9E3779B97F4A7C15, (1 << 64) - 1


def signed(v: int) -> int:
    """An integer taken modulo ``2^64``, as the int64 of the same bits."""
    v &= M64
    return v - (1 << 64) if v >= 1 << 63 else v


def keys(n: int = N, seed: int = 0, epoch: int = 0, start: int = 0) -> torch.Tensor:
    return keyed.sample_keys(seed, epoch, torch.arange(start, start + n))


def test_mix64_is_splitmix64_with_int64_wrapping_and_logical_shifts() -> None:
    # SplitMix64 seeded with 1234567: state += golden, output = mix64(state) (Vigna's
    # reference splitmix64.c; these are its first outputs)
    want = [6457827717110365317, 3203168211198807973, 9817491932198370423]
    states = torch.tensor([signed(1234567 + j * GAMMA) for j in (1, 2, 3)])
    assert [v & M64 for v in keyed.mix64(states).tolist()] == want
    # uniform() runs the same sequence from its stream key, in int64 (wrapping) arithmetic
    start = keyed.stream_keys(torch.tensor([7]), keyed.Stream.BOX)
    states = torch.tensor([signed(start.item() + j * GAMMA) for j in (1, 2, 3)])
    bits = [(v & M64) >> 11 for v in keyed.mix64(states).tolist()]
    assert keyed.uniform(torch.tensor([7]), keyed.Stream.BOX, 3)[0].tolist() == [
        v * 2.0**-53 for v in bits
    ]
    x = torch.tensor([0, 1, -1, -(1 << 63), (1 << 63) - 1, 0x123456789ABCDEF])
    assert keyed.mix64(x).tolist() == [signed(keyed.mix64_int(v)) for v in x.tolist()]


def test_uniforms_are_in_unit_interval_and_uniform() -> None:
    u = keyed.uniform(keys(), keyed.Stream.BOX, 4)
    assert u.shape == (N, 4) and u.dtype == torch.float64
    assert bool(((u >= 0) & (u < 1)).all())
    for column in u.T.numpy():
        counts = np.bincount((column * 64).astype(np.int64), minlength=64)
        assert chi_square_p_ok(counts, np.full(64, N / 64))
    # 53-bit resolution: the low bits are not stuck
    low_bits = (u[:, 0].numpy() * 2.0**53).astype(np.int64) & 0xFF
    assert chi_square_p_ok(np.bincount(low_bits, minlength=256), np.full(256, N / 256))


def joint_ok(a: torch.Tensor, b: torch.Tensor, bins: int = 10) -> bool:
    """Chi-square test of independence on the ``bins × bins`` joint histogram."""
    cell = (a.numpy() * bins).astype(np.int64) * bins + (b.numpy() * bins).astype(np.int64)
    counts = np.bincount(cell, minlength=bins * bins)
    return chi_square_p_ok(counts, np.full(bins * bins, a.numel() / bins**2))


@pytest.mark.parametrize(
    "other",
    [
        "next position",
        "next epoch",
        "next seed",
        "other stream",
        "next value",
    ],
)
def test_draws_of_neighbouring_keys_are_independent(other: str) -> None:
    base = keyed.uniform(keys(), keyed.Stream.BOX, 2)
    if other == "next position":
        b = keyed.uniform(keys(start=1), keyed.Stream.BOX, 1)[:, 0]
    elif other == "next epoch":
        b = keyed.uniform(keys(epoch=1), keyed.Stream.BOX, 1)[:, 0]
    elif other == "next seed":
        b = keyed.uniform(keys(seed=1), keyed.Stream.BOX, 1)[:, 0]
    elif other == "other stream":
        b = keyed.uniform(keys(), keyed.Stream.OFFSET_Y, 1)[:, 0]
    else:
        b = base[:, 1]
    a = base[:, 0]
    assert not torch.equal(a, b)
    assert joint_ok(a, b)
    assert abs(float(np.corrcoef(a.numpy(), b.numpy())[0, 1])) < 0.02


def test_keys_are_a_bijection_of_position_and_depend_on_seed_and_epoch() -> None:
    k = keys()
    assert torch.unique(k).numel() == N
    assert not torch.equal(k, keys(seed=1)) and not torch.equal(k, keys(epoch=1))
    # a position's key does not depend on the batch it comes in
    assert torch.equal(keys(start=100, n=8), k[100:108])
    # the n-th value of a stream does not depend on how many are drawn
    u = keyed.uniform(k[:50], keyed.Stream.GRID_TILE, 8)
    assert torch.equal(keyed.uniform(k[:50], keyed.Stream.GRID_TILE, 3), u[:, :3])


def test_integers_below_and_permutation() -> None:
    high = torch.tensor([1, 5, 12]).expand(N, 3)
    got = keyed.integers_below(keys(), keyed.Stream.GRID_DEGREES, high)
    assert bool(((got >= 0) & (got < high)).all()) and bool((got[:, 0] == 0).all())
    for column, n in ((1, 5), (2, 12)):
        counts = np.bincount(got[:, column].numpy(), minlength=n)
        assert chi_square_p_ok(counts, np.full(n, N / n))
    # permutations of 3: all 6 equally often over many batches (epochs)
    perms = torch.stack(
        [keyed.permutation(keys(3, epoch=e), keyed.Stream.CUTMIX_PARTNER) for e in range(3000)]
    )
    assert bool((perms.sort(dim=1).values == torch.arange(3)).all())
    codes = (perms * torch.tensor([9, 3, 1])).sum(dim=1).numpy()
    counts = np.unique(codes, return_counts=True)[1]
    assert counts.size == 6 and chi_square_p_ok(counts, np.full(6, 500.0))


def test_inverse_cdf_follows_the_weights_and_never_picks_a_zero_weight() -> None:
    weights = torch.tensor([0.0, 1.0, 0.0, 0.5, 0.5, 2.0, 0.0]).expand(N, 7)
    u = keyed.uniform(keys(), keyed.Stream.BOX, 1)[:, 0]
    counts = np.bincount(keyed.inverse_cdf(weights, u).numpy(), minlength=7)
    assert counts[[0, 2, 6]].sum() == 0
    assert chi_square_p_ok(counts[[1, 3, 4, 5]], N * np.array([1, 0.5, 0.5, 2]) / 4)
    # u at the top of [0, 1): u · total rounds below the total, so the last positive entry
    top = torch.full((1,), 1 - 2.0**-53, dtype=torch.float64)
    row = torch.tensor([[0.1, 0.7, 0.0, 0.0]])
    assert keyed.inverse_cdf(row, top).tolist() == [1]
    assert keyed.inverse_cdf(row, torch.zeros(1, dtype=torch.float64)).tolist() == [0]


def test_inverse_cdf_never_picks_a_zero_weight_at_the_ends_of_u() -> None:
    """At ``u = 0`` and ``u = 1 − 2^-53`` (the ends of :func:`keyed.uniform`'s range), for
    random rows with zero runs at both ends and inside, and totals from 2^-40 to 2^40: the
    index has positive weight. With the first-CDF-value-≥ rule (``right=False``) ``u = 0``
    returns a leading zero weight."""
    gen = torch.Generator().manual_seed(3)
    w = torch.rand(2000, 9, generator=gen) * (torch.rand(2000, 9, generator=gen) < 0.4)
    w[:, 0] = 0.0
    w[:, 4] = torch.where(w[:, 1:].sum(dim=1) == 0, 1.0, w[:, 4])  # a positive entry per row
    w = w * 2.0 ** torch.randint(-40, 41, (2000, 1), generator=gen)
    for end in (0.0, 1 - 2.0**-53):
        index = keyed.inverse_cdf(w, torch.full((2000,), end, dtype=torch.float64))
        assert bool((w.gather(1, index[:, None]) > 0).all())


def test_inverse_cdf_is_the_first_cdf_value_above_u_total_in_float64() -> None:
    """At a CDF step ``u · total = cdf[i]`` the next column is chosen (half-open intervals
    ``[cdf[i−1], cdf[i])``); the CDF is kept in float64: with weights (1, 2^24, 1) the
    boundary between the last two columns is 2^24 + 1, which a float32 CDF stores as 2^24,
    moving ``u · total = 2^24 + 0.5`` into the last column."""
    half = torch.tensor([0.5, 0.25], dtype=torch.float64)
    assert keyed.inverse_cdf(torch.tensor([[1.0, 1.0], [1.0, 3.0]]), half).tolist() == [1, 1]
    big = torch.tensor([[1.0, 2.0**24, 1.0]] * 2)  # float32 weights
    total = 2.0**24 + 2
    u = torch.tensor([(2.0**24 + 0.5) / total, (2.0**24 + 1.5) / total], dtype=torch.float64)
    assert keyed.inverse_cdf(big, u).tolist() == [1, 2]


def test_host_key_and_sample_keys_are_the_documented_splitmix64_chain() -> None:
    """``host_key(w1, …)`` is SplitMix64 stepped by each word from ``host_key()``:
    ``h ← mix64(h + w + γ)``, and ``sample_keys = mix64(position + host_key(seed, epoch))``,
    ``stream_keys = mix64(key ^ host_key(stream))``, spelled out on host integers with
    SplitMix64's published increment γ. Fixed values: a run's Keep draws are the same in
    every release that passes this test."""
    h0 = keyed.host_key() & M64
    for words in [(3,), (3, 7), (7, 3), (2**40, 1, 0)]:
        h = h0
        for w in words:
            h = keyed.mix64_int(h + w + GAMMA)
        assert keyed.host_key(*words) == signed(h)
    position = torch.tensor([0, 1, 5, 1 << 40])
    want = [signed(keyed.mix64_int(p + (keyed.host_key(11, 2) & M64))) for p in position.tolist()]
    assert keyed.sample_keys(11, 2, position).tolist() == want
    assert keyed.sample_keys(11, 2, position.to(torch.int32)[:3]).tolist() == want[:3]
    k = keyed.sample_keys(11, 2, position)
    key = keyed.host_key(int(keyed.Stream.BOX)) & M64
    want = [signed(keyed.mix64_int((v & M64) ^ key)) for v in k.tolist()]
    assert keyed.stream_keys(k, keyed.Stream.BOX).tolist() == want


def test_stream_keys_are_a_bijection_of_the_sample_keys() -> None:
    keys = torch.arange(-4096, 4096)
    assert keyed.stream_keys(keys, keyed.Stream.OFFSET_X).unique().numel() == keys.numel()


def unmix64(z: int) -> int:
    """The inverse of SplitMix64's finalizer (each xor-shift and odd multiplier undone)."""

    def unshift(v: int, s: int) -> int:
        x = v
        for _ in range(64 // s + 1):
            x = v ^ (x >> s)
        return x

    z = unshift(z, 31)
    z = (z * pow(0x94D049BB133111EB, -1, 1 << 64)) & M64
    z = unshift(z, 27)
    z = (z * pow(0xBF58476D1CE4E5B9, -1, 1 << 64)) & M64
    return unshift(z, 30)


def test_host_key_is_an_int64_at_the_sign_bit_too() -> None:
    """The word whose hash is ``2^63`` (found by inverting the finalizer) gives the int64
    ``−2^63``: every 64-bit hash maps to the int64 of the same bits."""
    for v in (0, 1, 1 << 63, M64, 0x123456789ABCDEF):
        assert keyed.mix64_int(unmix64(v)) == v
    word = (unmix64(1 << 63) - (keyed.host_key() & M64) - GAMMA) & M64
    assert keyed.host_key(word) == -(1 << 63)
    word = (unmix64((1 << 63) - 1) - (keyed.host_key() & M64) - GAMMA) & M64
    assert keyed.host_key(word) == (1 << 63) - 1


@pytest.mark.parametrize("alpha", [0.2, 0.5, 1.0, 2.0, 8.0])
def test_beta_matches_scipy_beta(alpha: float) -> None:
    lam = keyed.beta(keys(20_000), keyed.Stream.CUTMIX_LAMBDA, alpha)
    assert lam.dtype == torch.float64 and bool(((lam >= 0) & (lam <= 1)).all())
    assert stats.kstest(lam.numpy(), stats.beta(alpha, alpha).cdf).pvalue > 1e-3


@pytest.mark.parametrize("alpha", [0.2, 1.0, 2.0, 8.0])
def test_gamma_draws_match_scipy_gamma(alpha: float) -> None:
    """``exp(_log_gamma_draw)`` is Gamma(α, 1) itself (KS, 20,000 draws, seed fixed), not
    only through the Beta ratio, where errors common to X and Y cancel (a boost of
    ``U^(−1/α)`` instead of ``U^(1/α)`` leaves ``log X − log Y`` symmetric and passes the
    Beta test; here it moves the median of Gamma(1) from 0.69 to 1.9). A proposal scale
    ``c = 2/√(9d)``, or a wrong acceptance bound (``+ d·v``, ``1.5·z²``, ``or`` for ``and``),
    fails at p < 1e-10."""
    u = keyed.uniform(keys(20_000), keyed.Stream.CUTMIX_LAMBDA, 3 * keyed.GAMMA_CANDIDATES + 1)
    x = torch.exp(keyed._log_gamma_draw(u, alpha)).numpy()
    assert stats.kstest(x, stats.gamma(alpha).cdf).pvalue > 1e-3


def test_gamma_is_marsaglia_tsang_exactly() -> None:
    """The candidate and its test, spelled out (Marsaglia & Tsang, 2000): ``d = α + 2/3``,
    ``c = 1/√(9d)``, ``v = (1 + c·z)^3``, accepted iff ``log u < z²/2 + d − d·v + d·log v``;
    ``log X = log(d·v) + log(U)/α``. At z = 2 the bound is ≈ −0.06, so a ``u`` just above it
    is rejected and the next candidate (z = 0) is used. The Wilson–Hilferty shortcut (accept
    every ``v > 0``), a looser bound or another ``c`` pass the KS test above at 20,000 draws
    but not this."""
    m, alpha = keyed.GAMMA_CANDIDATES, 1.0
    d = alpha + 2.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)

    def z_to_u1(z: float) -> float:  # Box–Muller with cos(2π·0) = 1
        return 1.0 - math.exp(-z * z / 2.0)

    v2 = (1.0 + 2.0 * c) ** 3
    bound = 2.0 + d - d * v2 + d * math.log(v2)
    assert -0.1 < bound < -0.03
    u = torch.zeros(2, 3 * m + 1, dtype=torch.float64)
    u[:, 2 * m : 3 * m] = 0.5  # accept z = 0 candidates: log 0.5 < 0
    u[:, 3 * m] = 0.3  # the boost U = 1 − 0.3
    u[0, 0] = z_to_u1(2.0)
    u[0, 2 * m] = 1.0 - math.exp(bound - 0.01)  # just inside: accepted
    u[1, 0] = z_to_u1(2.0)
    u[1, 2 * m] = 1.0 - math.exp(bound + 0.01)  # just outside: rejected, candidate 1 used
    got = keyed._log_gamma_draw(u, alpha).tolist()
    boost = math.log(0.7) / alpha
    assert got == pytest.approx([math.log(d * v2) + boost, math.log(d) + boost], rel=1e-12)


def test_beta_with_a_tiny_alpha_matches_numpy() -> None:
    """Beta(0.05, 0.05) piles up within 1e-16 of 0 and 1, where SciPy's CDF loses precision:
    compare with NumPy's sampler instead (two-sample KS), no NaN from 0/0."""
    lam = keyed.beta(keys(20_000), keyed.Stream.CUTMIX_LAMBDA, 0.05).numpy()
    ref = np.random.default_rng(0).beta(0.05, 0.05, 20_000)
    assert np.isfinite(lam).all()
    assert stats.ks_2samp(lam, ref).pvalue > 1e-3


def test_gamma_falls_back_to_a_finite_value_when_every_candidate_is_rejected() -> None:
    m = keyed.GAMMA_CANDIDATES
    u = torch.zeros(2, 3 * m + 1, dtype=torch.float64)
    u[:, :m] = 1 - 1e-10  # radius sqrt(-2 log 1e-10) ≈ 6.8
    u[:, m : 2 * m] = 0.5  # cos(π) = −1: z ≈ −6.8, v = (1 + c·z)^3 < 0, rejected
    # sample 1: its last candidate has z = 0 (v = 1) and log(1 − 0.5) < 0: accepted
    u[1, m - 1], u[1, 2 * m - 1], u[1, 3 * m - 1] = 0.0, 0.0, 0.5
    log_x = keyed._log_gamma_draw(u, 1.0).tolist()  # the boost U^(1/α) is 1 (u = 0)
    d = 1.0 + 2.0 / 3.0
    assert log_x == pytest.approx([np.log(d) + np.log(2.0**-53), np.log(d)], rel=1e-12)
