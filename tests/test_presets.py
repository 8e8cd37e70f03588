"""Pipeline presets against their definitions, through real DALI pipelines on generated JPEGs:
CIFAR pad+crop offsets vs torchvision ``RandomCrop(32, padding=4)``, CIFAR val identity,
ColorJitter vs torchvision's ``ColorJitter`` on the same images, PCA lighting vs the clovaai
``Lighting`` formula."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from dali_gridaug import create_loader
from dali_gridaug.presets import (
    CIFAR,
    CIFAR_MEAN,
    CIFAR_STD,
    IMAGENET,
    PCA_EIGVAL,
    PCA_EIGVEC,
    ColorJitter,
    Lighting,
    Preset,
    resolve_preset,
)

N_IMAGES, SIDE = 16, 32


@pytest.fixture(scope="module")
def cifar_like(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 textured 32×32 JPEGs (4 classes) with values in [60, 170]: few pixels saturate
    under ColorJitter(0.4), and every 32×32 window of the padded image is distinct."""
    root = tmp_path_factory.mktemp("cifar_like")
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:SIDE, 0:SIDE]
    for i in range(N_IMAGES):
        folder = root / f"c{i % 4}"
        folder.mkdir(exist_ok=True)
        tint = rng.uniform(0.3, 1.0, 3)
        wave = np.sin(x / rng.uniform(2, 5) + rng.uniform(0, 6)) * np.cos(y / rng.uniform(2, 5))
        img = 115 + 45 * (0.6 * wave[..., None] * tint + 0.4 * rng.uniform(-1, 1, (SIDE, SIDE, 3)))
        Image.fromarray(np.clip(img, 60, 170).astype(np.uint8)).save(
            folder / f"{i}.jpg", quality=95
        )
    return root


def _epochs(loader, epochs: int) -> tuple[np.ndarray, np.ndarray]:
    """``(N, H, W, 3)`` float32 images and ``(N,)`` file indices over ``epochs`` epochs."""
    images, keys = [], []
    for _ in range(epochs):
        for raw in loader.raw():
            images.append(raw["images"].permute(0, 2, 3, 1).numpy())
            keys.append(raw["key"].numpy().ravel())
    return np.concatenate(images), np.concatenate(keys)


@pytest.fixture(scope="module")
def decoded(cifar_like: Path) -> np.ndarray:
    """``(N, 32, 32, 3)`` uint8: each file decoded by DALI, nothing else."""
    from nvidia.dali import fn, pipeline_def

    files = create_loader(cifar_like, batch_size=N_IMAGES, device="cpu").source
    paths = [str(p) for p in files.files]

    @pipeline_def(batch_size=N_IMAGES, num_threads=1, device_id=None)
    def plain():
        encoded, _ = fn.readers.file(files=paths, random_shuffle=False)
        return fn.decoders.image(encoded, device="cpu")

    pipe = plain()
    pipe.build()
    return np.stack([np.asarray(t) for t in pipe.run()[0]])


def _loader(root: Path, preset, **kw):
    kw = {"mean": 0, "std": 1, **kw}
    return create_loader(root, batch_size=8, device="cpu", image_size=SIDE, preset=preset, **kw)


def test_cifar_val_is_the_image_unchanged(cifar_like: Path, decoded: np.ndarray) -> None:
    loader = create_loader(cifar_like, batch_size=8, train=False, device="cpu", preset="cifar")
    assert loader.spec.mean == CIFAR_MEAN and loader.spec.std == CIFAR_STD  # preset's default
    images, keys = _epochs(loader, 1)
    assert sorted(keys) == list(range(N_IMAGES))
    expected = (decoded[keys].astype(np.float32) - CIFAR_MEAN) / np.float32(CIFAR_STD)
    np.testing.assert_allclose(images, expected, atol=1e-5)
    # the ImageNet val pipeline (resize to 37, centre crop) is not the identity
    resized, keys = _epochs(_loader(cifar_like, "imagenet", train=False), 1)
    assert np.abs(resized - decoded[keys]).max() > 10


@functools.cache
def _windows(source_bytes: bytes, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """All 9×9 windows ``(9, 9, 32, 32, 3)`` of the padded source and their pixel sums."""
    source = np.frombuffer(source_bytes, np.uint8).reshape(SIDE, SIDE, 3)
    padded = np.pad(source, ((4, 4), (4, 4), (0, 0)), mode=mode).astype(np.float64)
    win = np.lib.stride_tricks.sliding_window_view(padded, (SIDE, SIDE, 3))[:, :, 0]
    return win, win.sum((2, 3, 4))


def _offsets(out: np.ndarray, source: np.ndarray, mode: str) -> tuple[int, int, bool]:
    """The unique ``(i, j, flipped)`` with ``out == pad(source)[i:i+32, j:j+32]`` (mirrored
    if flipped), ``pad`` = numpy's constant-0 or reflect padding by 4."""
    win, sums = _windows(np.ascontiguousarray(source).tobytes(), mode)
    hits = [
        (int(i), int(j), flip)
        for flip, img in ((False, out), (True, out[:, ::-1]))
        for i, j in zip(*np.nonzero(sums == img.sum(dtype=np.float64)), strict=True)
        if (win[i, j] == img).all()
    ]
    assert len(hits) == 1, f"{len(hits)} padded windows match"
    return hits[0]


def _torchvision_offsets(decoded: np.ndarray, mode: str, draws: int) -> np.ndarray:
    """``(draws, 2)`` offsets of torchvision's ``RandomCrop(32, padding=4)``: its own
    ``get_params`` on the padded shape; one full call checks that its fill is numpy's."""
    from torchvision.transforms import RandomCrop

    crop = RandomCrop(SIDE, padding=4, padding_mode=mode)
    torch.manual_seed(0)
    img = crop(torch.from_numpy(decoded[0]).permute(2, 0, 1)).permute(1, 2, 0).numpy()
    _offsets(img.astype(np.float32), decoded[0], mode)  # exactly one padded window matches
    padded = torch.empty(3, SIDE + 8, SIDE + 8)
    return np.asarray([RandomCrop.get_params(padded, (SIDE, SIDE))[:2] for _ in range(draws)])


@pytest.mark.parametrize(("fill", "mode"), [("zero", "constant"), ("reflect", "reflect")])
def test_cifar_train_is_torchvision_pad_and_random_crop(
    cifar_like: Path, decoded: np.ndarray, fill: str, mode: str
) -> None:
    preset = Preset("cifar", crop="pad", padding=4, fill=fill, crop_pct=None)
    images, keys = _epochs(_loader(cifar_like, preset, seed=3), 25)  # 400 crops
    found = np.asarray(
        [_offsets(img, decoded[k], mode) for img, k in zip(images, keys, strict=True)]
    )
    ij, flips = found[:, :2], found[:, 2]
    ref = _torchvision_offsets(decoded, mode, len(ij))
    for axis in (0, 1):  # uniform over the 9 offsets, as torchvision
        counts = np.bincount(ij[:, axis], minlength=9)
        assert len(counts) == 9 and stats.chisquare(counts).pvalue > 1e-3
        table = [counts, np.bincount(ref[:, axis], minlength=9)]
        assert stats.chi2_contingency(table).pvalue > 1e-3
    # the kept source area: ≥ (28/32)², mean ((32 − 20/9)/32)² for offsets uniform on 0…8
    kept = ((SIDE - np.abs(ij - 4)) / SIDE).prod(1)
    ref_kept = ((SIDE - np.abs(ref - 4)) / SIDE).prod(1)
    assert kept.min() >= (28 / 32) ** 2 - 1e-12
    sem = np.hypot(kept.std() / np.sqrt(len(kept)), ref_kept.std() / np.sqrt(len(ref_kept)))
    assert abs(kept.mean() - ref_kept.mean()) < 4.5 * sem
    assert abs(kept.mean() - (1 - 20 / 288) ** 2) < 4.5 * kept.std() / np.sqrt(len(kept))
    assert abs(flips.mean() - 0.5) < 4.5 * 0.5 / np.sqrt(len(flips))


GRAY = np.array([0.299, 0.587, 0.114])


def _jitter_stats(out: np.ndarray, src: np.ndarray) -> np.ndarray:
    """Per image: brightness ratio (mean), contrast ratio (std of grey) and saturation ratio
    (mean |x − grey|), output over source. ``(N, 3)``."""

    def measure(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float64)
        g = x @ GRAY
        return np.stack(
            [x.mean((1, 2, 3)), g.std((1, 2)), np.abs(x - g[..., None]).mean((1, 2, 3))], 1
        )

    return measure(out) / measure(src)


def _torchvision_jitter(decoded: np.ndarray, draws: int, strength=(0.4, 0.4, 0.4)) -> np.ndarray:
    from torchvision.transforms import ColorJitter as TVColorJitter

    jitter = TVColorJitter(*strength)
    torch.manual_seed(0)
    src = decoded[np.arange(draws) % len(decoded)]
    out = np.stack([np.asarray(jitter(Image.fromarray(x))) for x in src])  # PIL, as clovaai
    return _jitter_stats(out, src)


def test_color_jitter_matches_torchvision(cifar_like: Path, decoded: np.ndarray) -> None:
    preset = Preset("jitter", crop="pad", crop_pct=None, color_jitter=ColorJitter(0.4, 0.4, 0.4))
    # torchvision draws a random order of the three ops; without clamping they commute
    # exactly, so these per-image statistics do not depend on it (clamping is rare here)
    images, keys = _epochs(_loader(cifar_like, preset, seed=5), 40)  # 640 draws
    assert (images == np.round(images)).all() and images.min() >= 0 and images.max() <= 255
    ours = _jitter_stats(images, decoded[keys])
    ref = _torchvision_jitter(decoded, len(ours))
    for k, name in enumerate(("brightness", "contrast", "saturation")):
        a, b = ours[:, k], ref[:, k]
        assert stats.ks_2samp(a, b).pvalue > 1e-3, name
        assert abs(a.mean() - b.mean()) < 4.5 * np.hypot(a.std(), b.std()) / np.sqrt(len(a)), name
        assert 0.5 < a.var() / b.var() < 2.0, name
    # the comparison has power: a brightness range of 0.2 instead of 0.4 is rejected
    weaker = _torchvision_jitter(decoded, len(ours), (0.2, 0.4, 0.4))
    assert stats.ks_2samp(ours[:, 0], weaker[:, 0]).pvalue < 1e-6


def _clovaai_lighting(img: torch.Tensor, alphastd: float) -> torch.Tensor:
    """clovaai CutMix-PyTorch ``utils.Lighting.__call__`` on a CHW [0, 1] tensor."""
    eigval, eigvec = torch.tensor(PCA_EIGVAL), torch.tensor(PCA_EIGVEC)
    alpha = img.new().resize_(3).normal_(0, alphastd)
    rgb = eigvec.type_as(img).clone().mul(alpha.view(1, 3).expand(3, 3))
    rgb = rgb.mul(eigval.view(1, 3).expand(3, 3)).sum(1).squeeze()
    return img.add(rgb.view(3, 1, 1).expand_as(img))


def test_lighting_matches_the_clovaai_formula(cifar_like: Path, decoded: np.ndarray) -> None:
    preset = resolve_preset(Preset("light", crop="pad", crop_pct=None), lighting=0.1)
    images, keys = _epochs(_loader(cifar_like, preset, seed=9), 40)  # 640 draws
    shifts = []
    for img, k in zip(images, keys, strict=True):
        src = decoded[k].astype(np.float32)
        diffs = [img - src, img - src[:, ::-1]]  # unflipped or flipped
        diff = min(diffs, key=lambda d: d.std((0, 1)).max())
        np.testing.assert_allclose(diff, np.broadcast_to(diff[0, 0], diff.shape), atol=1e-3)
        shifts.append(diff[0, 0] / 255)  # one constant per channel: in [0, 1] units
    shifts = np.asarray(shifts, np.float64)
    torch.manual_seed(0)
    zero = torch.zeros(3, 1, 1)
    ref = np.stack([_clovaai_lighting(zero, 0.1).numpy().ravel() for _ in shifts])
    for c in range(3):
        assert stats.ks_2samp(shifts[:, c], ref[:, c]).pvalue > 1e-3
        assert 0.7 < shifts[:, c].std() / ref[:, c].std() < 1.4
    # α recovered from the shifts is N(0, 0.1²) per eigenvector, independent
    alpha = np.linalg.solve(np.asarray(PCA_EIGVEC), shifts.T).T / np.asarray(PCA_EIGVAL)
    for c in range(3):
        assert stats.kstest(alpha[:, c], stats.norm(0, 0.1).cdf).pvalue > 1e-3
    assert np.abs(np.corrcoef(alpha.T) - np.eye(3)).max() < 0.2


def test_lighting_and_jitter_are_shared_by_the_clean_view(cifar_like: Path) -> None:
    loader = _loader(cifar_like, "imagenet", color_jitter=0.4, lighting=0.1, keep_clean=True)
    for b in loader:
        assert torch.equal(b.images, b.clean)  # one draw drives both views
        break
    assert loader.spec.preset.lighting == Lighting(std=0.1)
    assert loader.spec.preset.color_jitter == ColorJitter(0.4, 0.4, 0.4)


def test_presets_by_name_and_by_object(cifar_like: Path) -> None:
    assert resolve_preset("cifar") is CIFAR and resolve_preset(CIFAR) is CIFAR
    assert resolve_preset("imagenet") is IMAGENET
    mine = Preset("mine", crop="pad", padding=2, fill="reflect", size=24)
    assert resolve_preset(mine) is mine
    jittered = resolve_preset(mine, color_jitter=0.3, lighting=Lighting(std=0.2))
    assert jittered.color_jitter == ColorJitter(0.3, 0.3, 0.3) and jittered.lighting.std == 0.2
    assert (jittered.padding, jittered.fill) == (2, "reflect")
    loader = create_loader(cifar_like, batch_size=8, device="cpu", preset="cifar")
    # the spec carries the final preset: CIFAR's, its size as (H, W)
    assert loader.spec.size == (32, 32) and loader.spec.preset == dataclasses.replace(
        CIFAR, size=(32, 32)
    )
    assert next(iter(loader)).images.shape == (8, 3, 32, 32)
    assert create_loader(cifar_like, batch_size=8, device="cpu").spec.size == (224, 224)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (
            lambda: resolve_preset("cifar10"),
            ValueError,
            r"`preset` must be one of 'imagenet', 'cifar'; got 'cifar10'",
        ),
        (lambda: resolve_preset(3), TypeError, r"`preset` must be str or Preset, got 3"),
        (
            lambda: resolve_preset("cifar", color_jitter=-0.1),
            ValueError,
            r"`color_jitter.brightness` must be in \[0, inf\), got -0.1",
        ),
        (lambda: resolve_preset("cifar", lighting="high"), TypeError, r"`lighting` must be"),
        (lambda: Preset("x", fill="wrap"), ValueError, r"`preset.fill` must be one of"),
        (lambda: Preset("x", padding=-1), ValueError, r"`preset.padding` must be in \[0, inf\)"),
        (lambda: Lighting(eigval=(1.0, 2.0)), ValueError, r"`lighting` needs 3 `eigval`"),
    ],
)
def test_bad_preset_arguments_name_themselves(make, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        make()
