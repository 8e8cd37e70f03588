"""Mixup and the timm Mixup/CutMix switch against timm's own ``timm.data.mixup`` code: λ
distribution, switch rate and per-mode semantics (statistically), targets (exactly), pixels
through a real DALI pipeline (exactly, to float rounding)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats
from timm.data import mixup as timm_mixup  # the reference: timm's own code (test extra)

from dali_gridaug import create_loader
from dali_gridaug.augment import AUGMENTATIONS, RandomErasing, SampleContext
from dali_gridaug.augment.mixup import Mixup, MixupCutMix, sample_mix
from dali_gridaug.labels import mix_target
from tests.conftest import COLORS

B, H, W = 8, 16, 12
DRAWS = 3000  # batches per configuration


def _timm_draws(mode: str, **kw) -> tuple[np.ndarray, np.ndarray]:
    """``(DRAWS, B)`` corrected λ from timm's ``Mixup._mix_*`` on dummy images, and the
    ``(DRAWS, units)`` CutMix switch from its ``_params_per_*`` (same seeded global RNG)."""
    mixer = timm_mixup.Mixup(mode=mode, num_classes=10, **kw)
    np.random.seed(0)
    x = torch.zeros(B, 1, H, W)
    lams, switch = [], []
    for _ in range(DRAWS):
        if mode == "batch":
            lams.append(np.full(B, mixer._mix_batch(x.clone())))
            lam, cut = mixer._params_per_batch()
            switch.append([cut and lam < 1])
        else:
            mix = mixer._mix_elem if mode == "elem" else mixer._mix_pair
            lams.append(mix(x.clone()).numpy()[:, 0])
            lam, cut = mixer._params_per_elem(B if mode == "elem" else B // 2)
            switch.append(cut & (lam < 1))
    return np.asarray(lams, np.float64), np.asarray(switch, np.float64)


def _our_draws(mode: str, **kw) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    draws = [sample_mix(rng, B, H, W, mode=mode, **kw) for _ in range(DRAWS)]
    return {k: np.stack([d[k] for d in draws]) for k in draws[0]}


def _assert_same_moments(a: np.ndarray, b: np.ndarray) -> None:
    """Two-sided z-tests (4.5σ) on mean and variance of two independent samples."""
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    se_mean = math.sqrt(a.var() / len(a) + b.var() / len(b))
    assert abs(a.mean() - b.mean()) <= 4.5 * se_mean, (a.mean(), b.mean())

    def var_se(x: np.ndarray) -> float:
        return math.sqrt(max(((x - x.mean()) ** 4).mean() - x.var() ** 2, 1e-12) / len(x))

    assert abs(a.var() - b.var()) <= 4.5 * math.hypot(var_se(a), var_se(b)), (a.var(), b.var())


SWITCH = dict(mixup_alpha=0.8, cutmix_alpha=1.0, prob=0.8, switch_prob=0.5)


@pytest.mark.parametrize("mode", ["batch", "pair", "elem"])
@pytest.mark.slow
def test_lam_and_switch_rate_match_timm(mode: str) -> None:
    ref_lam, ref_switch = _timm_draws(mode, **SWITCH)
    ours = _our_draws(mode, **SWITCH)
    # one λ per unit (batch, pair, sample) on both sides
    units = {"batch": [0], "pair": list(range(B // 2)), "elem": list(range(B))}[mode]
    lam, ref = ours["lam"][:, units], ref_lam[:, units]
    _assert_same_moments(lam, ref)
    assert stats.ks_2samp(lam.ravel(), ref.ravel()).pvalue > 1e-3
    # P(λ = 1) = 1 − prob (up to boxes clipped away): the "mix at all" coin
    assert abs((lam == 1).mean() - (ref == 1).mean()) < 4.5 * math.sqrt(0.2 * 0.8 * 2 / lam.size)
    switch = ours["use_cutmix"][:, units].astype(np.float64)
    _assert_same_moments(switch, ref_switch)
    assert abs(switch.mean() - 0.8 * 0.5) < 0.03


@pytest.mark.slow
def test_statistics_tell_a_wrong_switch_apart() -> None:
    """The comparison has power: switch_prob 0.5 vs 0.2 is rejected."""
    ref_lam, _ = _timm_draws("elem", **{**SWITCH, "switch_prob": 0.2})
    ours = _our_draws("elem", **SWITCH)
    assert stats.ks_2samp(ours["lam"].ravel(), ref_lam.ravel()).pvalue < 1e-6


@pytest.mark.parametrize(
    "kw",
    [
        dict(mixup_alpha=0.0, cutmix_alpha=1.0, correct_lam=False),
        dict(mixup_alpha=0.0, cutmix_alpha=0.0, cutmix_minmax=(0.2, 0.8)),
        dict(mixup_alpha=0.2, cutmix_alpha=0.0),
    ],
)
@pytest.mark.slow
def test_single_branch_configs_match_timm(kw: dict) -> None:
    ref_lam, _ = _timm_draws("elem", **kw)
    ours = _our_draws("elem", **kw)
    _assert_same_moments(ours["lam"], ref_lam)
    assert stats.ks_2samp(ours["lam"].ravel(), ref_lam.ravel()).pvalue > 1e-3
    pasting = kw["cutmix_alpha"] > 0 or "cutmix_minmax" in kw
    assert (
        (ours["use_cutmix"] == (ours["lam"] < 1)).all() if pasting else not ours["use_cutmix"].any()
    )


def _distinct(lam: np.ndarray) -> np.ndarray:
    return np.array([len(np.unique(row)) for row in lam], np.float64)


@pytest.mark.parametrize("mode", ["batch", "pair", "elem"])
@pytest.mark.slow
def test_per_mode_semantics_match_timm(mode: str) -> None:
    ref_lam, _ = _timm_draws(mode, **SWITCH)
    ours = _our_draws(mode, **SWITCH)
    lam, flip = ours["lam"], B - 1 - np.arange(B)
    # λ values drawn per batch: 1 (batch), B/2 (pair), B (elem), fewer where units did not mix
    _assert_same_moments(_distinct(lam), _distinct(ref_lam))
    if mode != "elem":  # pairs i, B−1−i (and the whole batch) share λ and the box
        assert (lam == lam[:, flip]).all() and (ref_lam == ref_lam[:, flip]).all()
        assert (ours["box"] == ours["box"][:, flip]).all()
    if mode == "batch":
        assert (lam == lam[:, :1]).all() and (ours["box"] == ours["box"][:, :1]).all()
    if mode == "elem":  # independent draws: partners' λ uncorrelated
        assert abs(np.corrcoef(lam[:, 0], lam[:, -1])[0, 1]) < 0.1
        assert (lam != lam[:, flip]).any(1).mean() > 0.5
    mixed = lam < 1
    assert (ours["partner"][mixed] == np.broadcast_to(flip, lam.shape)[mixed]).all()
    assert (ours["partner"][~mixed] == np.broadcast_to(np.arange(B), lam.shape)[~mixed]).all()


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_targets_equal_timm_mixup_target(smoothing: float) -> None:
    k, rng = 10, np.random.default_rng(3)
    labels = torch.as_tensor(rng.integers(0, k, B))
    for mode in ("batch", "pair", "elem"):
        p = sample_mix(rng, B, H, W, mode=mode, **SWITCH)
        lam = torch.as_tensor(p["lam"])
        ours = mix_target(labels, torch.as_tensor(p["partner"]), lam, k, smoothing)
        ref = timm_mixup.mixup_target(labels, k, lam[:, None], smoothing)
        assert torch.equal(ours, ref)
    if smoothing:
        assert torch.isclose(ref.min(), torch.tensor(smoothing / k))


def _raw(root: Path, aug, epochs: int, seed: int = 7) -> tuple[list[dict], object]:
    loader = create_loader(
        root,
        batch_size=32,
        device="cpu",
        image_size=(32, 32),
        mean=0,
        std=1,
        augment=[aug],
        seed=seed,
    )
    out = []
    for _ in range(epochs):
        out += [{k: v.numpy() for k, v in raw.items()} for raw in loader.raw()]
    return out, loader


@pytest.fixture(scope="module")
def decoded(color_data: Path) -> np.ndarray:
    """``(N, 3)`` float32 decoded flat colour of each file (JPEG may move a channel by 1)."""
    loader = create_loader(
        color_data, batch_size=32, train=False, device="cpu", image_size=32, mean=0, std=1
    )
    out = np.zeros((len(loader.source), 3), np.float32)
    for raw in loader.raw():
        img = raw["images"].numpy()
        assert (img == img[:, :, :1, :1]).all()  # flat
        out[raw["key"].numpy().ravel()] = img[:, :, 0, 0]
    np.testing.assert_allclose(out, np.asarray(COLORS)[np.asarray(loader.source.targets)], atol=2)
    return out


@pytest.mark.parametrize("backend", ["dali", "kernel"])
def test_pixels_are_the_exact_blend_or_box(
    color_data: Path, decoded: np.ndarray, backend: str
) -> None:
    aug = MixupCutMix(mode="elem", switch_prob=0.5, backend=backend)
    batches, _ = _raw(color_data, aug, epochs=3)
    seen = set()
    for raw in batches:
        own = decoded[raw["key"].ravel()]  # (B, 3) flat colour of each sample
        lam, partner = raw["0.lam"].ravel(), raw["0.partner"].ravel()
        cut, box = raw["0.use_cutmix"].ravel().astype(bool), raw["0.box"].reshape(-1, 4)
        img = raw["images"]  # (B, 3, H, W) raw pixels
        blend = (own * lam[:, None] + own[partner] * (1 - lam[:, None]))[:, :, None, None]
        np.testing.assert_allclose(
            img[~cut], np.broadcast_to(blend[~cut], img[~cut].shape), atol=1e-3
        )
        for i in np.flatnonzero(cut):
            y0, x0, y1, x1 = box[i]
            inside = np.zeros((32, 32), bool)
            inside[y0:y1, x0:x1] = True
            np.testing.assert_array_equal(
                img[i][:, inside].T, np.broadcast_to(own[partner[i]], (inside.sum(), 3))
            )
            np.testing.assert_array_equal(
                img[i][:, ~inside].T, np.broadcast_to(own[i], ((~inside).sum(), 3))
            )
            assert abs((~inside).mean() - lam[i]) < 1e-6  # λ = own-pixel fraction
        seen |= {"mixup" if not c else "cutmix" for c, m in zip(cut, lam < 1) if m}
    assert seen == {"mixup", "cutmix"}


def test_loader_targets_equal_timm_with_its_default_smoothing(color_data: Path) -> None:
    loader = create_loader(
        color_data,
        batch_size=32,
        device="cpu",
        image_size=(32, 32),
        augment=[MixupCutMix(mode="pair")],
        seed=2,
    )
    for b in loader:
        k = b.target.shape[1]
        flip = torch.arange(len(b)).flip(0)
        assert torch.equal(b.partner[b.lam < 1], flip[b.lam < 1])
        ref = timm_mixup.mixup_target(b.labels, k, b.lam[:, None], 0.1)
        assert torch.equal(b.target, ref)


def test_mixup_blend_weight_is_lam(color_data: Path, decoded: np.ndarray) -> None:
    batches, _ = _raw(color_data, Mixup(alpha=0.4, mode="batch"), epochs=2)
    for raw in batches:
        lam, partner = raw["0.lam"].ravel(), raw["0.partner"].ravel()
        assert (lam == lam[0]).all() and "0.box" not in raw
        own = decoded[raw["key"].ravel()]
        expected = own * lam[:, None] + own[partner] * (1 - lam[:, None])
        np.testing.assert_allclose(raw["images"].mean((2, 3)), expected, atol=1e-3)


def test_registered_names() -> None:
    assert AUGMENTATIONS["mixup"] is Mixup and AUGMENTATIONS["mixup_cutmix"] is MixupCutMix
    defaults = MixupCutMix()
    assert (defaults.mixup_alpha, defaults.cutmix_alpha, defaults.switch_prob) == (0.8, 1.0, 0.5)
    assert defaults.label_smoothing == timm_mixup.Mixup().label_smoothing


def test_random_erasing_aspect_bound_is_timms() -> None:
    from timm.data.random_erasing import RandomErasing as TimmRandomErasing

    lo, hi = TimmRandomErasing(device="cpu").log_aspect_ratio
    np.testing.assert_allclose(np.log(RandomErasing().ratio), (lo, hi), rtol=1e-12)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: MixupCutMix(mixup_alpha=-0.1), r"`mixup_alpha` must be in \[0, inf\), got -0.1"),
        (lambda: MixupCutMix(mixup_alpha=0.0, cutmix_alpha=0.0), r"`mixup_alpha` or `cutmix_alpha"),
        (lambda: MixupCutMix(cutmix_minmax=(0.8, 0.2)), r"`cutmix_minmax` must satisfy min < max"),
        (lambda: MixupCutMix(switch_prob=1.5), r"`switch_prob` must be in \[0, 1\], got 1.5"),
        (lambda: MixupCutMix(mode="pairs"), r"`mode` must be one of .*got 'pairs'"),
        (lambda: Mixup(alpha=0.0), r"`alpha` must be in \(0, inf\), got 0.0"),
        (lambda: Mixup(p=2.0), r"`p` must be in \[0, 1\], got 2.0"),
        (lambda: Mixup(p=-0.1), r"^`p` must be in \[0, 1\], got -0.1$"),
        (lambda: Mixup(mode="x"), r"^`mode` must be one of 'batch', 'pair', 'elem'; got 'x'$"),
        (lambda: Mixup(label_smoothing=1.0), r"^`label_smoothing` must be in \[0, 1\), got 1.0$"),
        (lambda: Mixup(label_smoothing=-0.1), r"^`label_smoothing` must be in \[0, 1\), got -0.1"),
        (lambda: MixupCutMix(label_smoothing=1.0), r"^`label_smoothing` must be in \[0, 1\)"),
        (lambda: MixupCutMix(label_smoothing=-0.1), r"^`label_smoothing` must be in \[0, 1\)"),
        (lambda: MixupCutMix(prob=-0.1), r"^`prob` must be in \[0, 1\], got -0.1$"),
        (lambda: MixupCutMix(prob=1.1), r"^`prob` must be in \[0, 1\], got 1.1$"),
        (lambda: MixupCutMix(switch_prob=-0.1), r"^`switch_prob` must be in \[0, 1\], got -0.1$"),
        (lambda: MixupCutMix(mixup_alpha=-1.0), r"^`mixup_alpha` must be in \[0, inf\), got -1"),
        (lambda: MixupCutMix(cutmix_alpha=-1.0), r"^`cutmix_alpha` must be in \[0, inf\), got -1"),
        (
            lambda: MixupCutMix(cutmix_minmax=(0.5, 1.5)),
            r"^`cutmix_minmax\[1\]` must be in \[0, 1\]",
        ),
        (
            lambda: MixupCutMix(cutmix_minmax=(-0.5, 0.5)),
            r"^`cutmix_minmax\[0\]` must be in \[0, 1\]",
        ),
    ],
)
def test_bad_arguments_name_themselves(make, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()


def test_correct_lam_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match=r"^`correct_lam` must be bool, got 1 \(int\)$"):
        MixupCutMix(correct_lam=1)


def test_edge_arguments_are_accepted() -> None:
    """The ranges' closed ends construct: p, prob, switch_prob 0 and 1, ε 0, α 0 for one
    branch, cutmix_minmax touching 0 and 1."""
    for p in (0.0, 1.0):
        assert Mixup(p=p).p == p and MixupCutMix(prob=p, switch_prob=p).prob == p
    assert Mixup(label_smoothing=0.0).label_smoothing == 0.0
    assert MixupCutMix(mixup_alpha=0.0).cutmix_alpha == 1.0
    assert MixupCutMix(cutmix_alpha=0.0).mixup_alpha == 0.8
    assert MixupCutMix(cutmix_minmax=[0.0, 1.0]).cutmix_minmax == (0.0, 1.0)


def test_pair_mode_needs_an_even_batch(color_data: Path) -> None:
    with pytest.raises(ValueError, match=r"`mode`='pair' needs an even `batch_size`, got 7"):
        create_loader(color_data, batch_size=7, device="cpu", augment=[MixupCutMix(mode="pair")])
    with pytest.raises(ValueError, match=r"`cutmix_minmax`=\(0.1, 0.12\) leaves no integer box"):
        create_loader(
            color_data,
            batch_size=8,
            device="cpu",
            image_size=16,
            augment=[MixupCutMix(cutmix_minmax=(0.1, 0.12))],
        )


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (
            Mixup(alpha=0.8, p=0.3, mode="elem"),
            dict(mixup_alpha=0.8, cutmix_alpha=0.0, prob=0.3, switch_prob=0.0),
        ),
        (
            MixupCutMix(mixup_alpha=0.4, cutmix_alpha=1.0, prob=0.6, switch_prob=0.3, mode="elem"),
            dict(mixup_alpha=0.4, cutmix_alpha=1.0, prob=0.6, switch_prob=0.3),
        ),
        (
            MixupCutMix(
                mixup_alpha=0.0,
                cutmix_alpha=0.0,
                cutmix_minmax=(0.3, 0.7),
                prob=0.5,
                correct_lam=False,
                mode="elem",
            ),
            dict(
                mixup_alpha=0.0,
                cutmix_alpha=0.0,
                cutmix_minmax=(0.3, 0.7),
                prob=0.5,
                correct_lam=False,
            ),
        ),
    ],
)
@pytest.mark.slow
def test_each_class_hands_its_own_arguments_to_the_rule(ours, theirs: dict) -> None:
    """``Mixup`` and ``MixupCutMix`` sample exactly with their fields (α, p/prob, switch,
    minmax, correction): λ and the mix rate match timm's ``Mixup`` built from the same
    numbers (a dropped ``prob`` would mix every sample: P(λ = 1) = 0 instead of 1 − p)."""
    ref_lam, _ = _timm_draws("elem", **theirs)
    rng = np.random.default_rng(2)
    lam = np.stack([ours.sample(rng, SampleContext(B, H, W))["lam"] for _ in range(DRAWS)])
    _assert_same_moments(lam, ref_lam)
    assert stats.ks_2samp(lam.ravel(), ref_lam.ravel()).pvalue > 1e-3
    p = theirs["prob"]
    assert abs((lam == 1).mean() - (1 - p)) < 4.5 * math.sqrt(p * (1 - p) / lam.size) + 0.01


def test_which_configs_paste_and_blend_plainly() -> None:
    """A paste (CutMix branch) exists only with ``cutmix_alpha > 0`` or a minmax; a plain
    blend view is needed only where pastes and per-sample draws (``elem``) meet."""
    assert not Mixup().pastes() and not Mixup(mode="elem").blend_plain()
    assert MixupCutMix().pastes() and not MixupCutMix(mode="batch").blend_plain()
    assert MixupCutMix(mode="elem").blend_plain() and not MixupCutMix(mode="pair").blend_plain()
    assert not MixupCutMix(cutmix_alpha=0.0).pastes()
    assert MixupCutMix(mixup_alpha=0.0, cutmix_alpha=0.0, cutmix_minmax=(0.2, 0.8)).pastes()


def test_weight_is_fed_not_emitted() -> None:
    names = {s.name: s.emitted for s in MixupCutMix().schema(H, W)}
    assert names["weight"] is False and names["lam"] is True


def test_minmax_that_leaves_no_box_side_is_refused() -> None:
    """``int(S·min) ≥ int(S·max)`` on either side is an error naming the geometry; the first
    side that still has room is not enough."""
    aug = MixupCutMix(cutmix_minmax=(0.3, 0.35))
    aug.check_geometry(100, 100, 8)  # 30 < 35 on both sides
    for h, w in ((100, 10), (10, 100)):  # 3 ≥ 3 on the short side
        with pytest.raises(
            ValueError,
            match=rf"^`cutmix_minmax`=\(0.3, 0.35\) leaves no integer box side on {h}×{w} images$",
        ):  # noqa: E501
            aug.check_geometry(h, w, 8)
