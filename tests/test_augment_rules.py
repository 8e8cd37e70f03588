"""Exact rules of the augmentations that mutation testing (issue 23) found no test held:
the kernel path keeps the image dtype, GridMix's derangement, its label smoothing and the
closed end of its grid size.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dali_gridaug.augment import AUGMENTATIONS, GridMix, SampleContext
from dali_gridaug.augment.mixup import MixupCutMix
from dali_gridaug.labels import mix_target

CTX = SampleContext(batch_size=8, height=24, width=32, epoch=3)
#: configs that act on every sample, so the kernel writes every image
ALWAYS = {
    "gridmask": {"p": 1.0, "d": (6, 12), "ramp_epochs": 0},
    "cutout": {"p": 1.0, "length": 8},
    "random_erasing": {"p": 1.0, "backend": "kernel"},  # its noise is drawn for the kernel
    "cutmix": {"p": 1.0},
    "gridmix": {"p": 0.5},
    "mixup": {"p": 1.0},
    "mixup_cutmix": {"prob": 1.0},
}


@pytest.mark.parametrize("name", sorted(ALWAYS))
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_the_kernel_path_keeps_the_image_dtype(name: str, dtype: type) -> None:
    """``apply_xp`` (the ``backend="kernel"`` path, a DALI ``python_function`` whose output
    type is the input's) returns the input's dtype and shape, float16 included (``test_kernels``
    covers float32 for the masks): a cast left at NumPy's default (``astype(None)`` is float64)
    fails here.
    """
    aug = AUGMENTATIONS[name](**ALWAYS[name])
    params = aug.sample(np.random.default_rng(0), CTX)
    images = np.random.default_rng(1).random((8, 24, 32, 3)).astype(dtype)
    out = aug.apply_xp(np, images.copy(), params)
    assert out.dtype == dtype and out.shape == images.shape
    assert not np.array_equal(out, images)  # it did act


def test_gridmix_derangement_has_no_fixed_point_and_the_default_has_some() -> None:
    rng = np.random.default_rng(0)
    own = np.arange(CTX.batch_size)
    deranged = [GridMix(derangement=True).sample(rng, CTX)["partner"] for _ in range(200)]
    assert not any((p == own).any() for p in deranged)
    plain = [GridMix().sample(rng, CTX)["partner"] for _ in range(200)]
    # a uniform permutation of 8 has a fixed point with probability 1 − 1/e ≈ 0.63
    assert 0.5 < np.mean([(p == own).any() for p in plain]) < 0.75


def test_gridmix_labels_smooth_by_the_given_epsilon_and_default_to_none() -> None:
    aug, k = GridMix(n=2, p=0.5), 5
    params = {n: torch.as_tensor(v) for n, v in aug.sample(np.random.default_rng(2), CTX).items()}
    y = torch.arange(CTX.batch_size) % k
    lam, partner = params["lam"].float(), params["partner"].long()
    plain = mix_target(y, y[partner], lam, k)
    torch.testing.assert_close(aug.labels(params, y, k).target, plain)
    eps = 0.1
    torch.testing.assert_close(aug.labels(params, y, k, eps).target, (1 - eps) * plain + eps / k)


def test_gridmix_grid_may_be_as_fine_as_the_image_side() -> None:
    GridMix(n=24).check_geometry(24, 32, 8)  # one-pixel cells: allowed
    with pytest.raises(ValueError, match=r"`n` must be in \[1, 24\] \(the image side\), got 25"):
        GridMix(n=25).check_geometry(24, 32, 8)


def test_gridmix_derangement_is_type_checked_by_name() -> None:
    with pytest.raises(TypeError, match=r"^`derangement` must be bool"):
        GridMix(derangement=1)


def test_mixup_cutmix_needs_an_alpha_and_says_so() -> None:
    with pytest.raises(ValueError) as info:
        MixupCutMix(mixup_alpha=0.0, cutmix_alpha=0.0)
    assert str(info.value) == (
        "`mixup_alpha` or `cutmix_alpha` must be > 0 (or `cutmix_minmax` set), "
        "got mixup_alpha=0 and cutmix_alpha=0"
    )


def test_mixup_cutmix_hands_correct_lam_to_the_rule() -> None:
    """timm's ``correct_lam``: True makes λ the box's true share, 1 − area/(H·W), after the
    box is clipped at the image's edge; False keeps the Beta draw."""
    h, w = CTX.height, CTX.width
    corrected, kept = [], []
    for seed in range(20):
        for correct, out in ((True, corrected), (False, kept)):
            aug = MixupCutMix(mixup_alpha=0.0, cutmix_alpha=1.0, correct_lam=correct)
            p = aug.sample(np.random.default_rng(seed), CTX)
            y0, x0, y1, x1 = p["box"][0].astype(np.float64)
            out.append((float(p["lam"][0]), 1 - (y1 - y0) * (x1 - x0) / (h * w)))
    assert all(lam == pytest.approx(share, abs=1e-6) for lam, share in corrected)
    assert any(lam != pytest.approx(share, abs=1e-3) for lam, share in kept)
