"""RandomErasing against timm's own ``timm.data.random_erasing.RandomErasing``: box area,
aspect and count, the clean split, and the fill of each mode, through real DALI CPU pipelines.

Our boxes are the emitted ``0.box`` parameters (checked against the pixels); timm's are
recorded by wrapping its ``_get_pixels`` (called once per placed box with ``(C, h, w)``).
Distributions are compared with two-sample KS and chi-square tests at fixed seeds; each
comparison uses about 2000 samples (a shift of a few percent in a mean fails).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from dali_gridaug import Cutout, RandomErasing, create_loader
from dali_gridaug.augment.base import ParamSpec, SampleContext
from dali_gridaug.kernels import box_visible_mask
from dali_gridaug.order import Step
from dali_gridaug.params import ParamSource
from tests.helpers import collect, make_constant_dataset

timm_re = pytest.importorskip("timm.data.random_erasing")

H, W = 48, 64  # not square: an h/w swap shows in the aspect
GREY = (128, 128, 128)
#: significance of every distribution test (fixed seeds: a pass is reproducible)
ALPHA = 1e-3


@pytest.fixture(scope="module")
def grey(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64 flat mid-grey JPEGs: with mean 128, std 1 every clean pixel is exactly 0."""
    return make_constant_dataset(tmp_path_factory.mktemp("grey"), [GREY], per_class=64)


def _ours(root: Path, aug: RandomErasing, epochs: int, *, batch_size: int = 64, **kw):
    keys = ("0.applied", "0.box") + (("0.color",) if aug.fill_mode == "rand" else ())
    loader = create_loader(
        root,
        batch_size=batch_size,
        device="cpu",
        image_size=(H, W),
        mean=128,
        std=1,
        augment=[aug],
        seed=kw.pop("seed", 3),
        **kw,
    )
    out = collect(loader, epochs, keys)
    out["box"] = out["0.box"].reshape(len(out["images"]), -1, 4)
    return out


def _timm(n: int, monkeypatch: pytest.MonkeyPatch, seed: int = 0, **kw):
    """timm's boxes ``[(h, w), ...]`` per sample and its erased fraction per sample."""
    boxes: list[list[tuple[int, int]]] = []

    def record(per_pixel, rand_color, patch_size, dtype=torch.float32, device="cpu"):
        boxes[-1].append(tuple(patch_size[1:]))
        return torch.ones(patch_size, dtype=dtype)

    monkeypatch.setattr(timm_re, "_get_pixels", record)
    random.seed(seed)
    erase = timm_re.RandomErasing(device="cpu", **kw)
    frac = np.empty(n)
    for i in range(n):
        boxes.append([])
        img = torch.zeros(3, H, W)
        erase(img)
        frac[i] = float(img[0].mean())
    return boxes, frac


def _sides(box: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per placed box of ``(N, K, 4)``: height, width; and boxes placed per sample."""
    h, w = box[..., 2] - box[..., 0], box[..., 3] - box[..., 1]
    placed = (h > 0) & (w > 0)
    return h[placed], w[placed], placed.sum(1)


def _erased(images: np.ndarray) -> np.ndarray:
    """``(N, H, W)``: pixels that differ from the clean 0 in any channel."""
    return (images != 0).any(1)


def _ks(a: np.ndarray, b: np.ndarray, what: str) -> None:
    r = stats.ks_2samp(a, b)
    means = f"ours mean {a.mean():.4g}, timm {b.mean():.4g}"
    assert r.pvalue > ALPHA, f"{what}: KS p={r.pvalue:.2g} ({means})"


@pytest.mark.parametrize("count", [pytest.param(1, id="one"), pytest.param((1, 3), id="1-3")])
def test_boxes_match_timm(grey: Path, monkeypatch: pytest.MonkeyPatch, count) -> None:
    ratio = (0.5, 4.0)  # asymmetric: tall boxes are likelier than wide ones
    aug = RandomErasing(p=1.0, ratio=ratio, mode="const", value=1.0, count=count)
    ours = _ours(grey, aug, epochs=32)
    n = len(ours["images"])
    # the emitted boxes are the erased pixels
    erased = _erased(ours["images"])
    assert np.array_equal(erased, box_visible_mask(np, H, W, ours["box"]) == 0)
    lo, hi = (count, count) if isinstance(count, int) else count
    t_boxes, t_frac = _timm(
        n,
        monkeypatch,
        probability=1.0,
        min_aspect=ratio[0],
        max_aspect=ratio[1],
        mode="const",
        min_count=lo,
        max_count=hi,
    )
    t_h = np.array([b[0] for s in t_boxes for b in s])
    t_w = np.array([b[1] for s in t_boxes for b in s])
    t_n = np.array([len(s) for s in t_boxes])
    h, w, k = _sides(ours["box"])
    _ks(h * w / (H * W), t_h * t_w / (H * W), "box area fraction")
    _ks(np.log(h / w), np.log(t_h / t_w), "box log aspect h/w")
    _ks(erased.mean((1, 2)), t_frac, "erased fraction per sample")
    # boxes per sample (a box that fits in no attempt is skipped, in both)
    table = np.array([np.bincount(k, minlength=hi + 1), np.bincount(t_n, minlength=hi + 1)])
    table = table[:, table.sum(0) > 0]
    if table.shape[1] > 1:
        assert stats.chi2_contingency(table).pvalue > ALPHA, table
    if lo < hi:
        assert (table[0, 1:] > n / 5).all(), table  # 1, 2 and 3 boxes all occur
    # the top-left corner is uniform over the positions that fit
    box = ours["box"][ours["box"][..., 2] > 0]
    jitter = np.random.default_rng(0).random((len(box), 2))  # integer uniform → continuous
    for axis, side in ((0, H), (1, W)):
        free = side - (box[:, 2 + axis] - box[:, axis]) + 1
        u = (box[:, axis] + jitter[:, axis]) / free
        assert stats.kstest(u, "uniform").pvalue > ALPHA, axis


def test_apply_rate_and_missing_fits_match_timm(grey: Path, monkeypatch) -> None:
    """p = 0.4 and a scale range where a box often fits in none of timm's 10 attempts: the
    share of samples with a box matches timm's; fewer attempts fit less often.
    """
    kw = {"p": 0.4, "scale": (0.6, 0.99), "ratio": (0.3, 3.0), "mode": "const", "value": 1.0}
    ours = _ours(grey, RandomErasing(**kw), epochs=32)
    applied = ours["0.applied"].astype(bool)
    assert np.array_equal(applied, _erased(ours["images"]).any((1, 2)))
    t_boxes, _ = _timm(
        len(applied), monkeypatch, probability=0.4, min_area=0.6, max_area=0.99, min_aspect=0.3
    )
    t_applied = np.array([len(s) > 0 for s in t_boxes])
    table = np.array([np.bincount(applied, minlength=2), np.bincount(t_applied, minlength=2)])
    assert stats.chi2_contingency(table).pvalue > ALPHA, table
    assert 0.3 < applied.mean() < 0.385  # p·(share that fits ≈ 0.88): both matter
    two = _ours(grey, RandomErasing(**kw, max_attempts=2), epochs=32)["0.applied"]
    assert two.mean() < applied.mean() - 0.1


def test_clean_split_is_the_first_part_of_every_batch(grey: Path, monkeypatch) -> None:
    aug = RandomErasing(p=1.0, mode="const", value=1.0, num_splits=2, count=(1, 2))
    loader = create_loader(
        grey,
        batch_size=9,
        device="cpu",
        image_size=(H, W),
        mean=128,
        std=1,
        augment=[aug],
        seed=1,
        drop_last=False,
    )
    sizes = []
    for raw in loader.raw():
        x, applied = raw["images"].numpy(), raw["0.applied"].numpy()
        b = len(x)
        sizes.append(b)
        erased = _erased(x).any((1, 2))
        assert not erased[: b // 2].any() and not applied[: b // 2].any()
        assert erased[b // 2 :].all() and np.array_equal(erased, applied.astype(bool))
    assert sizes[-1] == 1  # odd sizes: b // 2 rounds down (a batch of 1 has no clean row)
    # timm's rule on a batch tensor: the first b // num_splits are skipped
    monkeypatch.setattr(timm_re, "_get_pixels", lambda *a, **k: torch.ones(a[2]))
    batch = timm_re.RandomErasing(probability=1.0, num_splits=2, device="cpu")(
        torch.zeros(10, 3, H, W)
    )
    assert (batch.flatten(1).amax(1) > 0).tolist() == [False] * 5 + [True] * 5
    # 0 and 1: no clean part
    for splits in (0, 1):
        out = _ours(grey, RandomErasing(p=1.0, num_splits=splits), epochs=1, batch_size=10)
        assert out["0.applied"].all()


def test_const_fill_is_exact(tmp_path: Path) -> None:
    """timm's default ``const`` fill is 0 in normalized space: the mean colour."""
    root = make_constant_dataset(tmp_path, [(200, 200, 200)], per_class=32)  # exact in JPEG
    mean, std = (120.0, 100.0, 60.0), (50.0, 40.0, 20.0)
    clean = (200 - np.array(mean)) / std  # no channel is 0
    for aug, fill in (
        (RandomErasing(p=1.0, mode="const"), 0.0),
        (RandomErasing(p=1.0, value=-1.25, count=(1, 3)), -1.25),
    ):
        loader = create_loader(
            root,
            batch_size=32,
            device="cpu",
            image_size=(H, W),
            mean=mean,
            std=std,
            augment=[aug],
            seed=0,
        )
        out = collect(loader, 2, ("0.box",))
        x = out["images"].transpose(0, 2, 3, 1)
        inside = box_visible_mask(np, H, W, out["0.box"].reshape(len(x), -1, 4)) == 0
        assert inside.any((1, 2)).all()
        assert (x[inside] == np.float32(fill)).all()
        np.testing.assert_allclose(
            x[~inside], np.broadcast_to(clean, x[~inside].shape), rtol=0, atol=1e-5
        )


def test_rand_fill_is_one_normal_colour_per_box(grey: Path) -> None:
    ours = _ours(grey, RandomErasing(p=1.0, mode="rand"), epochs=16)
    x, box, color = ours["images"], ours["box"][:, 0], ours["0.color"][:, 0]
    values = []
    for i in range(len(x)):
        y0, x0, y1, x1 = box[i]
        patch = x[i, :, y0:y1, x0:x1].reshape(3, -1)
        assert np.array_equal(patch, np.repeat(color[i][:, None], patch.shape[1], 1))
        values.append(patch[:, 0])
    values = np.stack(values)  # (N, 3): one draw per box and channel
    for c in range(3):
        assert stats.kstest(values[:, c], "norm").pvalue > ALPHA
    # channels independent
    assert abs(np.corrcoef(values.T)[np.triu_indices(3, 1)]).max() < 4 / np.sqrt(len(values))


@pytest.mark.parametrize("count", [2, 3])  # 2: the graph's one- and many-box cases differ
def test_rand_fill_later_box_paints_over(grey: Path, count: int) -> None:
    ours = _ours(grey, RandomErasing(p=1.0, mode="rand", count=count), epochs=4)
    x, box, color = ours["images"], ours["box"], ours["0.color"]
    expected = np.zeros_like(x)
    for i in range(len(x)):
        for k in range(count):
            y0, x0, y1, x1 = box[i, k]
            expected[i, :, y0:y1, x0:x1] = color[i, k][:, None, None]
    assert np.array_equal(x, expected)


def test_pixel_fill_is_standard_normal_per_pixel(grey: Path) -> None:
    for count in (1, 2, (1, 3)):
        ours = _ours(grey, RandomErasing(p=1.0, mode="pixel", count=count), epochs=4)
        x = ours["images"].transpose(0, 2, 3, 1)
        inside = box_visible_mask(np, H, W, ours["box"]) == 0
        assert np.array_equal(_erased(ours["images"]), inside)  # exactly the boxes
        noise = x[inside]  # (n, 3)
        sample = noise[:: max(1, len(noise) // 20000)].ravel()
        assert stats.kstest(sample, "norm").pvalue > ALPHA
        # per pixel: neighbours are uncorrelated (not one colour per box)
        first = x[inside][:-1, 0]
        assert abs(np.corrcoef(first, x[inside][1:, 0])[0, 1]) < 0.05


@pytest.mark.parametrize("count", [1, 2])
def test_pixel_fill_leaves_samples_without_a_box_untouched(grey: Path, count: int) -> None:
    ours = _ours(grey, RandomErasing(p=0.5, mode="pixel", count=count), epochs=1)
    assert 0 < ours["0.applied"].mean() < 1
    inside = box_visible_mask(np, H, W, ours["box"]) == 0
    assert np.array_equal(_erased(ours["images"]), inside)


def test_unused_boxes_have_zero_colour() -> None:
    aug = RandomErasing(p=0.5, mode="rand", count=(1, 3))
    p = aug.sample(np.random.default_rng(0), SampleContext(batch_size=64, height=H, width=W))
    unused = (p["box"] == 0).all(-1)
    assert unused.any() and (~unused).any()
    assert (p["color"][unused] == 0).all() and (p["color"][~unused] != 0).all()


@pytest.mark.parametrize("kw", [{"mode": "rand", "count": (1, 3)}, {"value": 0.5, "count": 2}])
def test_backends_and_the_per_op_path_agree(grey: Path, kw) -> None:
    """The DALI graph, the NumPy kernel, and the per-op fallback (beside a kernel op)."""
    dali = _ours(grey, RandomErasing(p=0.7, **kw), epochs=1)
    kernel = _ours(grey, RandomErasing(p=0.7, backend="kernel", **kw), epochs=1)
    assert np.array_equal(dali["images"], kernel["images"])
    keys = ("0.applied", "0.box", "1.box")
    loader = create_loader(
        grey,
        batch_size=64,
        device="cpu",
        image_size=(H, W),
        mean=128,
        std=1,
        seed=3,
        augment=[RandomErasing(p=0.7, **kw), Cutout(length=4, p=1.0, backend="kernel")],
    )
    mixed = collect(loader, 1, keys)
    cut = box_visible_mask(np, H, W, mixed["1.box"])[:, None] == 0
    assert np.array_equal(mixed["0.box"], dali["0.box"])
    assert np.array_equal(np.where(cut, 0, dali["images"]), mixed["images"])


def test_draws_are_world_size_invariant() -> None:
    aug = RandomErasing(p=0.8, mode="rand", count=(1, 3))
    g = 12

    def draw(rows: np.ndarray) -> dict[str, np.ndarray]:
        src = ParamSource([aug], batch_size=len(rows), height=H, width=W, seed=5, rank=0)
        return src.draw(Step(2, 24, g, rows, rows))

    whole = draw(np.arange(g))
    for part in (np.arange(0, g, 2), np.arange(1, g, 2), np.arange(6, 12)):
        own = draw(part)
        for k in ("0.box", "0.color", "0.applied"):
            assert np.array_equal(own[k], whole[k][part]), k


def test_schema_shapes() -> None:
    one = {s.name: s for s in RandomErasing().schema(H, W)}
    assert one["box"] == ParamSpec("box", np.int32, (4,))
    three = {s.name: s for s in RandomErasing(mode="rand", count=(2, 3)).schema(H, W)}
    assert three["box"].shape == (3, 4) and three["color"].shape == (3, 3)


def test_recipe_lists_and_the_resolved_mode() -> None:
    """A TOML recipe gives lists; ``value`` alone picks the mode (older configs unchanged)."""
    from dali_gridaug.augment import AUGMENTATIONS

    aug = AUGMENTATIONS["random_erasing"](count=[1, 3], mode="rand", num_splits=2)
    assert aug.count_range == (1, 3) and aug.max_boxes == 3
    assert RandomErasing().fill_mode == "pixel" and RandomErasing(value="random").fill() == "noise"
    assert RandomErasing(value=0.5).fill_mode == "const" and RandomErasing(value=0.5).fill() == 0.5
    assert RandomErasing(mode="const").fill() == 0.0  # timm's const: zeros
