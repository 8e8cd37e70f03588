"""Keep geometry: the clip box rule of the baselines, GridMask's discrete grids, torch mirrors
of :mod:`dali_gridaug.geometry`, chunked KeepGridMask masks and low-resolution offsets.

Every statistical test compares against an exact distribution computed here by enumeration
(or against the baselines' own NumPy sampler), with real torch models giving the saliency.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from dali_gridaug import geometry
from dali_gridaug.augment import CutMix, Cutout, GridMask, SampleContext
from dali_gridaug.saliency import KeepStage, keyed
from dali_gridaug.saliency.boxes import clipped_box_scores, select_clipped_boxes
from dali_gridaug.saliency.grid import default_gridmask, sample_grid_draws
from dali_gridaug.saliency.maps import saliency_map
from dali_gridaug.saliency.regions import integral_image, quantize_saliency
from dali_gridaug.saliency.torch_geometry import (
    cut_sides,
    degrees_to_radians,
    grid_ratio,
)
from tests.helpers import chi_square_p_ok, make_batch, random_images, tiny_model

K = 16


def blind_model() -> nn.Sequential:
    """Logits independent of the input (zero weights), so the saliency is exactly zero."""
    model = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, K))
    with torch.no_grad():
        model[2].weight.zero_()
        model[2].bias.copy_(torch.arange(K, dtype=torch.float32))
    return model


def areas(boxes: torch.Tensor) -> torch.Tensor:
    return ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).double()


# -- one geometry: the torch mirrors equal dali_gridaug.geometry ------------------------------


def test_torch_mirrors_equal_the_geometry_module() -> None:
    lam = np.concatenate([[0.0, 1.0, 0.25, 0.75], np.random.default_rng(0).random(5000)])
    for height, width in ((224, 224), (32, 40), (7, 3)):
        want_h, want_w = geometry.cut_sides(lam, height, width)
        got_h, got_w = cut_sides(torch.from_numpy(lam), height, width)
        assert np.array_equal(got_h.numpy(), want_h) and np.array_equal(got_w.numpy(), want_w)
    tile = np.arange(1, 400)
    for r in (0.1, 0.3, 0.4, 0.5, 0.6, 0.7, 0.99):
        want = ((tile - geometry.grid_stripe(tile, r)) / tile).astype(np.float32)
        assert np.array_equal(grid_ratio(torch.from_numpy(tile), r).numpy(), want), r
    degrees = np.arange(360)
    params = geometry.GridParams(tile=tile, ratio=tile, degrees=degrees, shift_x=tile, shift_y=tile)
    assert np.array_equal(degrees_to_radians(torch.from_numpy(degrees)).numpy(), params.angle)


def test_integers_below_is_numpy_integers_distribution() -> None:
    high = torch.tensor([1, 2, 7] * 20_000).reshape(-1, 3)
    keys = keyed.sample_keys(1, 0, torch.arange(high.shape[0]))
    draws = keyed.integers_below(keys, keyed.Stream.BOX, high)
    assert bool(((draws >= 0) & (draws < high)).all())
    sevens = draws[high == 7].numpy()
    assert chi_square_p_ok(np.bincount(sevens, minlength=7), np.full(7, sevens.size / 7))


def test_grid_draws_have_gridmask_discrete_semantics() -> None:
    cfg = GridMask(r=0.6, d=(7, 8), rotate=30)
    grid = sample_grid_draws(cfg, keyed.sample_keys(2, 0, torch.arange(600)), 10)
    assert bool((grid.tile == 7).all())
    assert torch.equal(grid.ratio, torch.full_like(grid.ratio, (7 - math.ceil(7 * 0.6)) / 7))
    for shift in (grid.shift_x, grid.shift_y):
        assert bool((shift == shift.round()).all())
        counts = np.bincount(shift.long().flatten().numpy(), minlength=7)
        assert counts.size == 7 and chi_square_p_ok(counts, np.full(7, shift.numel() / 7))
    degrees = grid.angle.double() * 180 / math.pi
    assert torch.allclose(degrees, degrees.round(), atol=1e-4)
    counts = np.bincount(degrees.round().long().flatten().numpy(), minlength=30)
    assert counts.size == 30 and chi_square_p_ok(counts, np.full(30, degrees.numel() / 30))
    # the default period range scales with the image: d in [max(2, H // 3), H)
    default = sample_grid_draws(default_gridmask(96), keyed.sample_keys(3, 0, torch.arange(50)), 8)
    assert int(default.tile.min()) == 32 and int(default.tile.max()) == 95


@pytest.mark.parametrize("saliency", ["full", "lowres"])
def test_gridmask_chunking_does_not_change_the_result(saliency: str) -> None:
    model = tiny_model(K)
    batch = make_batch(random_images(4, 12, 32))
    cfg = GridMask(r=0.5, d=(6, 14), rotate=45)
    outs = []
    for budget in (1, 3 * 8 * 32 * 32 + 5, 1 << 30):  # 1 sample, 3 samples, all at once
        stage = KeepStage(
            model,
            "gridmask",
            gridmask=cfg,
            draws=8,
            saliency=saliency,
            seed=5,
            max_mask_elements=budget,
        )
        params = stage.sample_params(batch)
        outs.append((params, stage.apply(batch, params).images))
    (first, images), rest = outs[0], outs[1:]
    assert 0 < float(first.keep.mean()) < 1
    for params, other in rest:
        assert torch.equal(params.keep, first.keep) and torch.equal(params.draw, first.draw)
        assert torch.equal(params.draw_scores, first.draw_scores)
        assert torch.equal(other, images)


# -- box="clip": the baselines' rule ----------------------------------------------------------


def test_clipped_boxes_are_the_baselines_boxes_with_brute_force_scores() -> None:
    g = torch.rand(3, 9, 11, generator=torch.Generator().manual_seed(6))
    sides = torch.tensor([4, 5, 0])
    scores, boxes = clipped_box_scores(integral_image(g), sides, sides + 2)
    q = quantize_saliency(g).numpy()
    for b in range(3):
        for cy in range(9):
            for cx in range(11):
                want = geometry.centred_box(
                    np.int64(cy), np.int64(cx), int(sides[b]), int(sides[b]) + 2, 9, 11
                )
                assert boxes[b, cy, cx].tolist() == [int(v) for v in want]
                y0, x0, y1, x1 = want
                assert int(scores[b, cy, cx]) == int(q[b, y0:y1, x0:x1].sum())


def test_clipped_choice_is_cut_eligible_and_uniform() -> None:
    height, width, side, tau, draws = 8, 8, 4, 0.6, 6000
    g = np.random.default_rng(7).random((height, width))
    sums = np.array(
        [
            g[
                slice(*np.clip([cy - 2, cy + 2], 0, height)),
                slice(*np.clip([cx - 2, cx + 2], 0, width)),
            ]
            .astype(np.float64)
            .sum()
            for cy in range(height)
            for cx in range(width)
        ]
    )
    n = sums.size
    k = math.ceil(tau * n)
    eligible = np.sort(np.argsort(sums, kind="stable")[:k])
    assert np.diff(np.sort(sums)).min() > side * side * 2.0**-24 * g.max()  # no ties
    maps = torch.from_numpy(g).float().expand(draws, height, width).contiguous()
    keys = keyed.sample_keys(8, 0, torch.arange(draws))
    boxes, centres = select_clipped_boxes(maps, side, side, tau=tau, which="cut", keys=keys)
    chosen = (centres[:, 0] * width + centres[:, 1]).numpy()
    assert set(chosen.tolist()) <= set(eligible.tolist())
    counts = np.bincount(chosen, minlength=n)[eligible]
    assert (counts > 0).all() and chi_square_p_ok(counts, np.full(k, draws / k))
    want = geometry.centred_box(centres[:, 0], centres[:, 1], side, side, height, width)
    assert torch.equal(boxes, torch.stack(want, dim=1))


@pytest.mark.parametrize("saliency", ["full", "lowres"])
@pytest.mark.slow
def test_clip_with_zero_saliency_is_exactly_the_cutout_baseline(saliency: str) -> None:
    size, length, batch, rounds = 12, 6, 1000, 12
    model = blind_model()
    stage = KeepStage(model, "cutout", length=length, box="clip", saliency=saliency, seed=9)
    boxes = torch.cat(
        [
            # a new epoch per round: new keyed draws (the same epoch would repeat them)
            stage.sample_params(make_batch(random_images(r, batch, size)).replace(epoch=r)).boxes
            for r in range(rounds)
        ]
    )
    assert float(saliency_map(model, random_images(0, 2, size), torch.arange(2)).abs().max()) == 0
    # exact baseline distribution: centre uniform over the 144 pixels, box clipped
    baseline: dict[tuple[int, ...], float] = {}
    for cy in range(size):
        for cx in range(size):
            box = tuple(
                int(v)
                for v in geometry.centred_box(
                    np.int64(cy), np.int64(cx), length, length, size, size
                )
            )
            baseline[box] = baseline.get(box, 0.0) + 1 / size**2
    seen: dict[tuple[int, ...], int] = {}
    for box in map(tuple, boxes.tolist()):
        seen[box] = seen.get(box, 0) + 1
    assert set(seen) <= set(baseline)
    keys = sorted(baseline)
    counts = np.array([seen.get(key, 0) for key in keys], dtype=np.float64)
    assert chi_square_p_ok(counts, np.array([baseline[key] for key in keys]) * len(boxes))


@pytest.mark.parametrize("method", ["cutmix", "cutout"])
@pytest.mark.slow
def test_clip_mean_cut_area_follows_the_baseline_not_the_inside_rule(method: str) -> None:
    size, batch, rounds = 32, 64, 8
    model = tiny_model(K)
    rng, ctx = np.random.default_rng(10), SampleContext(512, size, size)
    if method == "cutmix":
        lam = np.concatenate([CutMix(mode="elem").sample(rng, ctx)["lam"] for _ in range(20)])
        baseline = float(1 - lam.mean())  # ≈ 0.30 for α = 1 at 32×32
    else:
        boxes = np.concatenate([Cutout(length=16).sample(rng, ctx)["box"] for _ in range(20)])
        baseline = float(geometry.box_area(boxes).mean()) / size**2  # ≈ 0.19
    means = {}
    for box in ("clip", "inside"):
        stage = KeepStage(model, method, box=box, seed=11)
        cut = torch.cat(
            [
                areas(
                    stage.sample_params(
                        make_batch(random_images(12 + r, batch, size)).replace(epoch=r)
                    ).boxes
                )
                for r in range(rounds)
            ]
        )
        means[box] = float(cut.mean()) / size**2
    # selective-cut keeps low-saliency (often border-clipped, hence smaller) boxes: a little
    # below the baseline, far from the fully-inside rule (≈ 0.49 cutmix, 0.25 cutout)
    assert 0.75 * baseline < means["clip"] < baseline + 0.02, (means, baseline)
    assert means["inside"] > 1.25 * baseline, (means, baseline)


def test_keep_cutmix_clip_boxes_are_cut_eligible_with_lam_from_the_clipped_area() -> None:
    size, batch, tau = 24, 16, 0.6
    model = tiny_model(K)
    images = random_images(13, batch, size)
    out = KeepStage(model, "cutmix", box="clip", seed=14)(make_batch(images))
    lam = keyed.beta(keyed.sample_keys(14, 0, torch.arange(batch)), keyed.Stream.CUTMIX_LAMBDA, 1.0)
    sides_h, sides_w = geometry.cut_sides(lam.numpy(), size, size)
    torch.testing.assert_close(out.lam, (1 - areas(out.boxes) / size**2).float())
    own = (out.images == images).all(dim=1).float().mean(dim=(1, 2))
    moved = out.partner != torch.arange(batch)
    torch.testing.assert_close(out.lam[moved], own[moved], rtol=0, atol=1e-6)
    q = quantize_saliency(saliency_map(model, images, out.labels)).numpy()
    for b in range(batch):
        sh, sw = int(sides_h[b]), int(sides_w[b])
        candidates = {}
        for cy in range(size):
            for cx in range(size):
                box = tuple(
                    int(v)
                    for v in geometry.centred_box(np.int64(cy), np.int64(cx), sh, sw, size, size)
                )
                candidates[(cy, cx)] = (box, int(q[b, box[0] : box[2], box[1] : box[3]].sum()))
        scores = np.sort([s for _, s in candidates.values()])
        k = math.ceil(tau * scores.size)
        box = tuple(out.boxes[b].tolist())
        matching = [s for c, s in candidates.values() if c == box]
        assert matching and min(matching) <= scores[k - 1], b  # a cut-eligible candidate


@pytest.mark.slow
def test_lowres_reaches_odd_offsets_and_keeps_the_box_rules() -> None:
    size, length = 20, 6
    model = tiny_model(K)
    inside = KeepStage(model, "cutout", length=length, saliency="lowres", seed=15)
    clip = KeepStage(model, "cutout", length=length, box="clip", saliency="lowres", seed=16)
    tops, centres = set(), set()
    for r in range(6):
        batch = make_batch(random_images(20 + r, 64, size)).replace(epoch=r)
        boxes = inside.sample_params(batch).boxes
        assert bool(((boxes[:, 2:] - boxes[:, :2]) == length).all())
        tops |= set(boxes[:, 0].tolist()) | set(boxes[:, 1].tolist())
        boxes = clip.sample_params(batch).boxes
        full = (boxes[:, 2:] - boxes[:, :2] == length).all(dim=1)
        assert bool((boxes[:, 2:] - boxes[:, :2] <= length).all() and (boxes >= 0).all())
        centres |= set((boxes[full, :2] + length // 2).flatten().tolist())
    assert {t for t in tops if t % 2} and tops <= set(range(size - length + 1))
    assert {c for c in centres if c % 2}
