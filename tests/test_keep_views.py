"""Selective paste needs the clean and the augmented view of a sample to share crop and flip.

KeepAugment's selective paste copies a window of the clean view x into the augmented view
x' = A(x); that is only meaningful when both views come from the same crop with the same flip.
This test drives the real DALI loader (``keep_clean=True``) with each ``auto_augment`` policy
on generated JPEGs whose structure differs from its mirror image at every scale (random
high-contrast blobs), and compares the views by features that survive the policies' colour
operations: the normalized cross-correlation (NCC) of pooled gradient-magnitude maps. Colour
is not compared (brightness, contrast, solarize, posterize, equalize and invert change it);
edges survive them. Geometric policy ops (rotate, shear, translate) and ops that flatten the
image (contrast or brightness at magnitude 0) blur the evidence of some samples, so the
statistics are over the batch: the median NCC margin and, among the decisive samples
(``|margin| > 0.2``), the share that the mirrored alternative explains better.

Measured margins (batch of 64, seeds 0–2, CPU DALI), shared flip vs. a clean view flipped by
its own coin: median margin 0.48–0.88 vs. −0.09–0.18; wrong share among decisive samples
0–0.083 vs. 0.35–0.68. The thresholds (median ≥ 0.35, wrong share ≤ 0.15) sit between.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from dali_gridaug import create_loader

POLICIES = ("rand_augment", "auto_augment", "trivial_augment")
BATCH = 64
DECISIVE = 0.2


def blob_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """``(H, W, 3)`` uint8 two-colour random blobs (≈ 8 px scale): not mirror-symmetric."""
    noise = rng.standard_normal((height // 8 + 2, width // 8 + 2)).astype(np.float32)
    smooth = np.asarray(Image.fromarray(noise).resize((width, height), Image.BICUBIC))
    fg, bg = rng.integers(150, 256, 3), rng.integers(0, 100, 3)
    return np.where((smooth > 0)[..., None], fg, bg).astype(np.uint8)


@pytest.fixture(scope="module")
def blob_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 classes × 32 JPEGs of 180×220 random blobs."""
    root = tmp_path_factory.mktemp("blobs")
    rng = np.random.default_rng(0)
    for c in range(2):
        folder = root / f"class{c}"
        folder.mkdir()
        for i in range(32):
            Image.fromarray(blob_image(rng, 180, 220)).save(folder / f"{i}.jpg", quality=92)
    return root


def edge_features(images: torch.Tensor) -> torch.Tensor:
    """``(B, N)`` gradient magnitude of the luminance, average-pooled over 6×6 pixels."""
    lum = images.float().mean(1, keepdim=True)
    gx = lum[..., :-1, 1:] - lum[..., :-1, :-1]
    gy = lum[..., 1:, :-1] - lum[..., :-1, :-1]
    return F.avg_pool2d(torch.sqrt(gx**2 + gy**2), 6).flatten(1)


def ncc(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-row normalized cross-correlation of ``(B, N)`` features, in ``[−1, 1]``."""
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.slow
def test_clean_and_augmented_views_share_crop_and_flip(blob_data: Path, policy: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # DALI's auto_aug aliases
        loader = create_loader(
            str(blob_data),
            batch_size=BATCH,
            train=True,
            image_size=64,
            device="cpu",
            keep_clean=True,
            auto_augment=policy,
            seed=0,
            num_threads=2,
        )
        batch = next(iter(loader))
    assert batch.clean is not None and batch.clean.shape == batch.images.shape
    assert not torch.equal(batch.clean, batch.images)  # the policy did change the view
    augmented = edge_features(batch.images)
    same = ncc(edge_features(batch.clean), augmented)
    mirrored = ncc(edge_features(batch.clean.flip(-1)), augmented)
    other = ncc(edge_features(batch.clean.roll(1, dims=0)), augmented)  # another sample
    margin = same - mirrored
    decisive = margin.abs() > DECISIVE
    wrong = float((margin[decisive] < 0).float().mean())
    report = (
        f"{policy}: median margin {float(margin.median()):.3f}, decisive {int(decisive.sum())}, "
        f"wrong share {wrong:.3f}, median NCC same {float(same.median()):.3f} / mirrored "
        f"{float(mirrored.median()):.3f} / other sample {float(other.median()):.3f}"
    )
    # same flip: the un-mirrored clean view explains the augmented one
    assert float(margin.median()) >= 0.35, report
    assert int(decisive.sum()) >= BATCH // 2 and wrong <= 0.15, report
    # same crop: the sample's own clean view beats another sample's
    assert float((same - other).median()) >= 0.35, report
