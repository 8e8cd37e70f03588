"""The label rules of ``dali_gridaug.labels`` as exact formulas: values, dtype, device and the
defaults (each assertion kills a one-line change the mixing tests let through, issue 23)."""

from __future__ import annotations

import pytest
import torch

from dali_gridaug.labels import mix_target, one_hot, smooth_target

K = 5
LABELS = torch.tensor([0, 3, 4, 3])


def test_one_hot_values_and_default_are_timms():
    """off = ε/K, on = 1 − ε + ε/K (timm's arithmetic); the default ε is 0: exact 0/1."""
    eps = 0.1
    t = one_hot(LABELS, K, eps)
    off = eps / K
    expected = torch.full((4, K), off)
    expected[torch.arange(4), LABELS] = 1.0 - eps + off
    assert torch.equal(t, expected)
    assert torch.equal(one_hot(LABELS, K), torch.eye(K)[LABELS])


def test_one_hot_is_float32_on_the_labels_device_whatever_the_default_dtype():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        assert one_hot(LABELS, K, 0.1).dtype == torch.float32
    finally:
        torch.set_default_dtype(previous)
    meta = one_hot(LABELS.to("meta"), K, 0.1)  # a device other than the default one
    assert meta.device.type == "meta" and meta.dtype == torch.float32


def test_smooth_target_zero_is_the_identity():
    """ε = 0 returns the very tensor (hard targets stay int labels)."""
    assert smooth_target(LABELS, K, 0.0) is LABELS
    soft = torch.rand(4, K, dtype=torch.float64)
    assert smooth_target(soft, K, 0.0) is soft


@pytest.mark.parametrize("eps", [0.1, 0.5])
def test_smooth_target_rule(eps):
    """Hard labels: :func:`one_hot` with ε; soft targets: ``(1 − ε)·t + ε/K`` in float32 (a
    float64 input too)."""
    assert torch.equal(smooth_target(LABELS, K, eps), one_hot(LABELS, K, eps))
    soft = torch.softmax(
        torch.randn(4, K, dtype=torch.float64, generator=torch.Generator().manual_seed(0)), 1
    )
    out = smooth_target(soft, K, eps)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, (soft * (1 - eps) + eps / K).float(), rtol=0, atol=1e-7)
    torch.testing.assert_close(out.sum(1), torch.ones(4), rtol=0, atol=1e-6)


def test_mix_target_rule_dtype_and_default():
    """``λ·onehot(y) + (1 − λ)·onehot(y[partner])`` in float32 (λ given as float64), default ε 0."""
    partner = torch.tensor([1, 0, 3, 2])
    lam = torch.tensor([0.25, 1.0, 0.5, 0.0], dtype=torch.float64)
    t = mix_target(LABELS, partner, lam, K)
    assert t.dtype == torch.float32
    eye = torch.eye(K)
    expected = (
        lam.float()[:, None] * eye[LABELS] + (1 - lam.float()[:, None]) * eye[LABELS[partner]]
    )
    assert torch.equal(t, expected)
    smoothed = mix_target(LABELS, partner, lam, K, 0.1)
    torch.testing.assert_close(smoothed, 0.9 * expected + 0.1 / K, rtol=0, atol=1e-7)
