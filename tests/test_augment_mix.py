"""CutMix and GridMix against their papers: exact λ and label arithmetic from pixel provenance,
the official box rule's mean λ, Binomial cell counts, cell purity, patch labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from dali_gridaug import CutMix, GridMix, create_loader
from dali_gridaug.augment import Mixup, MixupCutMix
from dali_gridaug.kernels import cell_visible_mask
from dali_gridaug.labels import mix_target, one_hot
from tests.conftest import COLORS
from tests.helpers import color_ids
from tests.reference.official import cutmix_official_lam

EPOCHS = 63  # 32 flat-colour images per epoch → 2,016 draws


def _loader(root: Path, aug, size=(64, 64), seed=5, **options):
    kw = dict(batch_size=32, device="cpu", image_size=size, mean=0, std=1, seed=seed)
    return create_loader(root, augment=[aug], **kw, **options)


def _batches(loader, epochs: int):
    for _ in range(epochs):
        yield from loader


@pytest.fixture(scope="module")
def cutmix_draws(color_data: Path) -> list:
    return list(_batches(_loader(color_data, CutMix(mode="elem")), EPOCHS))


@pytest.mark.slow
def test_cutmix_lam_is_the_exact_pixel_fraction(cutmix_draws: list) -> None:
    for b in cutmix_draws:
        ids = color_ids(b.images, COLORS)
        own = (ids == b.labels[:, None, None].numpy()).mean((1, 2))
        other = (ids == b.labels[b.partner][:, None, None].numpy()).mean((1, 2))
        itself = (b.partner == torch.arange(len(b))).numpy()  # pasted onto itself
        np.testing.assert_allclose(own[~itself], b.lam.numpy()[~itself], atol=1e-6)
        assert (own[itself] == 1).all()
        # nothing else in the image
        np.testing.assert_allclose(own[~itself] + other[~itself], 1.0, atol=1e-6)


def test_cutmix_target_arithmetic(cutmix_draws: list) -> None:
    for b in cutmix_draws:
        k = b.target.shape[1]
        expected = b.lam[:, None] * one_hot(b.labels, k) + (1 - b.lam[:, None]) * one_hot(
            b.labels[b.partner], k
        )
        assert torch.equal(b.target, expected)
        torch.testing.assert_close(b.target.sum(1), torch.ones(len(b)))
        mixed = (b.labels != b.labels[b.partner]) & (b.lam < 1)
        assert ((b.target[mixed] > 0).sum(1) == 2).all()


def test_cutmix_mean_lam_follows_the_official_box_rule(cutmix_draws: list) -> None:
    lam = torch.cat([b.lam for b in cutmix_draws]).numpy()
    ref = cutmix_official_lam(64, 64, np.random.default_rng(0), 1.0, 1_000_000)
    assert len(lam) >= 2000
    assert abs(lam.mean() - ref.mean()) < 4 * lam.std() / np.sqrt(len(lam))
    assert stats.ks_2samp(lam, ref[:20000]).pvalue > 1e-3
    assert lam.mean() - 0.5 > 0.1  # a fully-inside box rule would give E[λ] = 0.5


def test_cutmix_batch_mode_shares_one_box(color_data: Path) -> None:
    for b in _batches(_loader(color_data, CutMix(mode="batch")), 5):
        assert torch.all(b.lam == b.lam[0])
        ids = color_ids(b.images, COLORS)
        from_partner = ids != b.labels[:, None, None].numpy()
        moved = from_partner[b.partner.numpy() != np.arange(len(b))]
        assert (moved == moved[0]).all()  # same box in every mixed image


def test_cutmix_corrected_lam_is_at_least_the_sampled_one(color_data: Path) -> None:
    a = next(iter(_loader(color_data, CutMix(mode="elem", correct_lam=True))))
    b = next(iter(_loader(color_data, CutMix(mode="elem", correct_lam=False))))
    assert torch.equal(a.images, b.images)  # same draw
    assert (a.lam >= b.lam - 1e-6).all() and (a.lam > b.lam + 1e-3).any()


def test_cutmix_label_smoothing_is_the_loaders(color_data: Path) -> None:
    b = next(iter(_loader(color_data, CutMix(), label_smoothing=0.1)))
    k = b.target.shape[1]
    torch.testing.assert_close(b.target.sum(1), torch.ones(len(b)))
    assert b.target.min() >= 0.1 / k - 1e-7
    torch.testing.assert_close(b.target, mix_target(b.labels, b.partner, b.lam, k, 0.1))
    with pytest.raises(TypeError, match="label_smoothing"):  # the loader's is the one knob
        CutMix(label_smoothing=0.1)


def test_cutmix_derangement_never_mixes_with_itself(color_data: Path) -> None:
    for b in _batches(_loader(color_data, CutMix(mode="elem", derangement=True)), 5):
        mixed = b.lam < 1
        assert (b.partner[mixed] != torch.arange(len(b))[mixed]).all()


@pytest.mark.parametrize(
    "aug",
    [CutMix(mode="elem"), GridMix(n=4, p=0.6), Mixup(mode="elem"), MixupCutMix(mode="elem")],
    ids=["cutmix", "gridmix", "mixup", "mixup_cutmix"],
)
def test_backends_agree(color_data: Path, aug) -> None:
    from dataclasses import replace

    a = next(iter(_loader(color_data, replace(aug, backend="dali"))))
    b = next(iter(_loader(color_data, replace(aug, backend="kernel"))))
    assert torch.equal(a.images, b.images) and torch.equal(a.target, b.target)


@pytest.fixture(scope="module")
def gridmix_draws(color_data: Path) -> list:
    return list(_batches(_loader(color_data, GridMix(n=4, p=0.8), size=(66, 70)), EPOCHS))


def test_gridmix_cell_count_is_binomial(gridmix_draws: list) -> None:
    counts = torch.cat([b.lam for b in gridmix_draws]).numpy() * 16
    assert np.allclose(counts, np.round(counts)) and len(counts) >= 2000
    k = np.round(counts).astype(int)
    pmf = stats.binom.pmf(np.arange(17), 16, 0.8)
    # merge the sparse left tail into one bin so every expected count is ≥ 5
    edge = int(np.argmax(pmf * len(k) >= 5))
    observed = np.r_[np.sum(k <= edge), [np.sum(k == i) for i in range(edge + 1, 17)]]
    expected = np.r_[pmf[: edge + 1].sum(), pmf[edge + 1 :]] * len(k)
    assert stats.chisquare(observed, expected * observed.sum() / expected.sum()).pvalue > 1e-3


def test_gridmix_cells_are_pure_and_match_patch_labels(gridmix_draws: list) -> None:
    h, w = 66, 70
    cell_of_row = cell_visible_mask(np, h, 1, np.arange(4)[None, :, None].repeat(4, 2))[0, :, 0]
    cell_of_col = cell_visible_mask(np, 1, w, np.arange(4)[None, None, :].repeat(4, 1))[0, 0, :]
    for b in gridmix_draws[:10]:
        ids = color_ids(b.images, COLORS)
        expected = b.patch_labels.numpy()[:, cell_of_row.astype(int)][:, :, cell_of_col.astype(int)]
        assert np.array_equal(ids, expected)  # every pixel is its cell's source image colour


def test_gridmix_patch_labels_average_to_the_target(gridmix_draws: list) -> None:
    for b in gridmix_draws:
        k = b.target.shape[1]
        mean_onehot = one_hot(b.patch_labels.reshape(-1), k).reshape(len(b), 16, k).mean(1)
        torch.testing.assert_close(mean_onehot, b.target, atol=1e-6, rtol=0)
        assert b.patch_labels.dtype == torch.int64 and b.patch_labels.shape == (len(b), 4, 4)


def test_mixing_needs_two_images() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        create_loader("unused", batch_size=1, augment=[GridMix()], device="cpu")
