"""KeepStage: KeepCutout, KeepCutMix, KeepGridMask and selective paste on real torch models.

Pixel-level checks use images whose values are known (random views, or a constant colour per
sample so that each output pixel names the image it came from); eligibility is checked against
brute-force NumPy window sums of an independently computed saliency map.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet

from dali_gridaug.augment import GridMask
from dali_gridaug.kernels import grid_visible_mask
from dali_gridaug.models.heads import EarlyHeadResNet
from dali_gridaug.saliency import KeepStage
from dali_gridaug.saliency.maps import lowres_images, saliency_map
from tests.helpers import box_mask, make_batch, random_images, tiny_model

K = 16
B = 16
S = 32


def assert_eligible(g: torch.Tensor, box: list[int], tau: float, which: str) -> None:
    """Brute force: the box's window sum is within the cut (paste) ranks of all windows.

    The stage ranks window sums of a saliency quantized to 2^-24 of its maximum, so the
    comparison allows that rounding (``h·w/2`` quanta).
    """
    y0, x0, y1, x1 = box
    h, w = y1 - y0, x1 - x0
    a = g.double().numpy()
    rows, cols = a.shape[0] - h + 1, a.shape[1] - w + 1
    sums = np.array(
        [[a[y : y + h, x : x + w].sum() for x in range(cols)] for y in range(rows)]
    ).ravel()
    n = sums.size
    k = min(max(math.ceil(round(tau * n, 9)), 1), max(n - 1, 1))
    ordered = np.sort(sums)
    tol = h * w * 2.0**-24 * a.max()
    chosen = a[y0:y1, x0:x1].sum()
    if which == "cut":
        assert chosen <= ordered[k - 1] + tol
    else:
        assert chosen >= ordered[min(k, n - 1)] - tol


# -- KeepCutout --------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [8, 32])
def test_cutout_zeroes_a_cut_eligible_box_and_leaves_the_rest(length: int) -> None:
    model = tiny_model(K).train()
    images = random_images(1)
    batch = make_batch(images)
    out = KeepStage(model, "cutout", length=length, seed=2)(batch)
    boxes = out.boxes
    assert boxes.dtype == torch.int64 and boxes.shape == (B, 4)
    assert bool(((boxes[:, 2:] - boxes[:, :2]) == length).all())
    assert bool((boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= S).all())
    inside = box_mask(boxes, S, S)[:, None].expand_as(images)
    assert bool((out.images[inside] == 0).all())
    assert torch.equal(out.images[~inside], images[~inside])
    assert torch.equal(batch.images, images)  # input not modified
    g = saliency_map(model, images, batch.labels)
    for b in range(B):
        assert_eligible(g[b], boxes[b].tolist(), 0.6, "cut")
    torch.testing.assert_close(out.target, torch.eye(K)[batch.labels])
    assert out.target.dtype == torch.float32 and out.lam.dtype == torch.float32
    assert torch.equal(out.lam, torch.ones(B)) and torch.equal(out.partner, torch.arange(B))
    assert model.training and all(p.grad is None for p in model.parameters())


def test_cutout_avoids_the_salient_region() -> None:
    """A linear model that only sees the top-left 12×12 corner: cuts never touch it.

    Of the 625 windows of side 8, the 481 that miss the corner have zero saliency and
    ceil(0.6 · 625) = 375 of them are cut-eligible, so no eligible window touches the corner.
    """
    torch.manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * S * S, K))
    with torch.no_grad():
        model[1].weight.view(K, 3, S, S)[..., 12:, :] = 0
        model[1].weight.view(K, 3, S, S)[..., :, 12:] = 0
    batch = make_batch(random_images(4))
    out = KeepStage(model, "cutout", length=8, seed=5)(batch)
    hits = box_mask(out.boxes, S, S)[:, :12, :12].flatten(1).any(1)
    assert not bool(hits.any())


# -- selective paste ---------------------------------------------------------------------------


def test_paste_copies_one_paste_eligible_clean_window_exactly() -> None:
    model = tiny_model(K)
    clean = random_images(6)
    augmented = random_images(7)
    batch = make_batch(augmented, clean=clean)
    stage = KeepStage(model, "paste", length=8, seed=8)
    params = stage.sample_params(batch)
    out = stage.apply(batch, params)
    inside = box_mask(out.boxes, S, S)[:, None].expand_as(clean)
    assert torch.equal(out.images[inside], clean[inside])
    assert torch.equal(out.images[~inside], augmented[~inside])
    assert bool(((out.boxes[:, 2:] - out.boxes[:, :2]) == 8).all())
    g = saliency_map(model, clean, batch.labels)  # saliency of the clean view
    torch.testing.assert_close(params.saliency, g)
    for b in range(B):
        assert_eligible(g[b], out.boxes[b].tolist(), 0.6, "paste")
    torch.testing.assert_close(out.target, torch.eye(K)[batch.labels])


def test_paste_without_clean_view_says_how_to_get_it() -> None:
    stage = KeepStage(tiny_model(K), "paste", length=8)
    with pytest.raises(ValueError, match=r"`batch.clean`.*got None.*keep_clean=True"):
        stage(make_batch(random_images(9)))


# -- KeepCutMix --------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [1.0, 0.05])
def test_cutmix_lam_is_the_measured_pixel_fraction(alpha: float) -> None:
    model = tiny_model(K)
    colours = torch.arange(1, B + 1, dtype=torch.float32) / B  # pixel value names the sample
    images = colours[:, None, None, None].expand(B, 3, S, S).contiguous()
    images = images + 0.01 * random_images(10)  # saliency needs some structure
    ident = colours[:, None, None, None].expand(B, 3, S, S)
    labels = torch.arange(B)
    batch = make_batch(images, labels)
    out = KeepStage(model, "cutmix", alpha=alpha, seed=11)(batch)
    partner = out.partner
    assert sorted(partner.tolist()) == list(range(B))
    inside = box_mask(out.boxes, S, S)
    own = (out.images == images).all(dim=1)
    from_partner = (out.images == images[partner]).all(dim=1)
    for b in range(B):
        if partner[b] != b:
            assert torch.equal(own[b], ~inside[b]) and torch.equal(from_partner[b], inside[b])
    measured = own.float().mean(dim=(1, 2))
    moved = partner != torch.arange(B)
    torch.testing.assert_close(out.lam[moved], measured[moved], rtol=0, atol=1e-6)
    area = (out.boxes[:, 2] - out.boxes[:, 0]) * (out.boxes[:, 3] - out.boxes[:, 1])
    torch.testing.assert_close(out.lam, 1 - area.float() / (S * S), rtol=0, atol=1e-6)
    assert bool((out.boxes[:, :2] >= 0).all() and (out.boxes[:, 2:] <= S).all())
    assert torch.equal(out.images.mean(dim=1) > 0, ident.mean(dim=1) > 0)  # no zero fill
    torch.testing.assert_close(out.target.sum(1), torch.ones(B))
    for b in range(B):
        row = out.target[b]
        lam = float(out.lam[b])
        if partner[b] != b and 0 < lam < 1:
            assert int((row > 0).sum()) == 2
            assert math.isclose(float(row[labels[b]]), lam, abs_tol=1e-6)
            assert math.isclose(float(row[labels[partner[b]]]), 1 - lam, abs_tol=1e-6)
    g = saliency_map(model, images, labels)
    for b in range(B):
        box = out.boxes[b].tolist()
        if box[2] > box[0] and box[3] > box[1]:
            assert_eligible(g[b], box, 0.6, "cut")


def test_cutmix_box_sides_follow_int_S_sqrt_one_minus_lambda() -> None:
    """The keyed λ draws can be replayed: sides are int(S·sqrt(1 − λ))."""
    from dali_gridaug.saliency import keyed

    model = tiny_model(K)
    height, width = 24, 40
    batch = make_batch(random_images(12, height=height, width=width))
    out = KeepStage(model, "cutmix", seed=13)(batch)
    keys = keyed.sample_keys(13, 0, torch.arange(B))  # a hand-built batch: positions arange(B)
    lam = keyed.beta(keys, keyed.Stream.CUTMIX_LAMBDA, 1.0)
    sides = out.boxes[:, 2:] - out.boxes[:, :2]
    expected = [[int(height * math.sqrt(1 - v)), int(width * math.sqrt(1 - v))] for v in lam]
    assert sides.tolist() == expected


# -- KeepGridMask ------------------------------------------------------------------------------


def test_gridmask_keeps_a_draw_within_the_saliency_quantile() -> None:
    model = tiny_model(K)
    images = random_images(14)
    batch = make_batch(images)
    cfg = GridMask(r=0.5, d=(6, 12), rotate=30, mode=1)
    stage = KeepStage(model, "gridmask", gridmask=cfg, draws=10, tau=0.6, seed=15)
    params = stage.sample_params(batch)
    out = stage.apply(batch, params)
    grid = params.grid
    assert grid is not None and params.draw_scores is not None and params.draw is not None
    # every candidate mask, rebuilt from the drawn parameters with the NumPy kernel
    masks = torch.from_numpy(
        grid_visible_mask(
            np,
            S,
            S,
            grid.tile.flatten().numpy(),
            grid.ratio.flatten().numpy(),
            grid.angle.flatten().numpy(),
            grid.shift_x.flatten().numpy(),
            grid.shift_y.flatten().numpy(),
            mode=1,
        )
    ).view(B, 10, S, S)
    g = saliency_map(model, images, batch.labels)
    dropped = (g[:, None] * (1 - masks)).double().sum(dim=(-2, -1))
    torch.testing.assert_close(params.draw_scores.double(), dropped, rtol=1e-5, atol=1e-6)
    k = math.ceil(0.6 * 10)
    for b in range(B):
        chosen = dropped[b, params.draw[b]]
        assert chosen <= dropped[b].sort().values[k - 1] + 1e-9
        assert torch.equal(params.keep[b], masks[b, params.draw[b]])
    keep = params.keep[:, None].bool().expand_as(images)
    assert torch.equal(out.images[keep], images[keep]) and bool((out.images[~keep] == 0).all())
    assert 0 < float(params.keep.mean()) < 1
    assert out.boxes.tolist() == [[0, 0, S, S]] * B
    # parameters as the GridMask algorithm: d in [6, 12), ratio = (d - ceil(d r)) / d
    tile = grid.tile.double()
    assert bool(((tile >= 6) & (tile < 12) & (tile == tile.round())).all())
    torch.testing.assert_close(grid.ratio.double(), (tile - torch.ceil(tile * 0.5)) / tile)
    assert bool(((grid.shift_x >= 0) & (grid.shift_x <= tile)).all())
    assert bool(((grid.angle >= 0) & (grid.angle < math.radians(30))).all())


def test_gridmask_default_periods_scale_with_the_image() -> None:
    stage = KeepStage(tiny_model(K), "gridmask", seed=16)
    params = stage.sample_params(make_batch(random_images(17)))
    tile = params.grid.tile
    assert bool(((tile >= S // 3) & (tile < S)).all())


# -- saliency approximations -------------------------------------------------------------------


@pytest.mark.parametrize("method", ["cutout", "paste"])
def test_lowres_windows_are_mapped_back_inside_the_image(method: str) -> None:
    model = tiny_model(K)
    height, width, length = 33, 31, 7
    images = random_images(18, height=height, width=width)
    batch = make_batch(images, clean=images + 1)
    stage = KeepStage(model, method, length=length, saliency="lowres", seed=19)
    params = stage.sample_params(batch)
    boxes = params.boxes
    assert params.saliency.shape == (B, height // 2, width // 2)
    source = batch.clean if method == "paste" else images
    g_low = saliency_map(model, lowres_images(source), batch.labels)
    torch.testing.assert_close(params.saliency, g_low)
    assert bool(((boxes[:, 2:] - boxes[:, :2]) == length).all())
    assert bool((boxes[:, :2] >= 0).all())
    assert bool((boxes[:, 2] <= height).all() and (boxes[:, 3] <= width).all())
    which = "cut" if method == "cutout" else "paste"
    for b in range(B):
        y0, x0 = boxes[b, :2].tolist()
        if y0 % 2 == 0 and x0 % 2 == 0 and y0 < height - length and x0 < width - length:
            low = [y0 // 2, x0 // 2, y0 // 2 + length // 2, x0 // 2 + length // 2]
            assert_eligible(g_low[b], low, 0.6, which)


def test_early_saliency_runs_the_early_head_only() -> None:
    torch.manual_seed(20)
    model = EarlyHeadResNet(ResNet(BasicBlock, [1, 1, 1, 1], num_classes=K)).train()
    calls: list[str] = []
    model.resnet.layer2.register_forward_hook(lambda *_: calls.append("layer2"))
    images = random_images(21)
    batch = make_batch(images)
    stage = KeepStage(model, "cutout", length=8, saliency="early", seed=22)
    params = stage.sample_params(batch)
    assert calls == []
    assert model.training and all(p.grad is None for p in model.parameters())
    expected = saliency_map(model, images, batch.labels, forward=model.early_logits)
    torch.testing.assert_close(params.saliency, expected)
    for b in range(B):
        assert_eligible(expected[b], params.boxes[b].tolist(), 0.6, "cut")


# -- determinism -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["cutout", "cutmix", "gridmask", "paste"])
def test_same_seed_same_batch_and_params_replay(method: str) -> None:
    model = tiny_model(K)
    batch = make_batch(random_images(23), clean=random_images(24))
    a = KeepStage(model, method, length=8, seed=25)
    b = KeepStage(model, method, length=8, seed=25)
    params = a.sample_params(batch)
    out_a = a.apply(batch, params)
    out_b = b(batch)
    for field in ("images", "target", "lam", "boxes", "partner"):
        assert torch.equal(getattr(out_a, field), getattr(out_b, field)), field
    assert torch.equal(a.apply(batch, params).images, out_a.images)
    other = KeepStage(model, method, length=8, seed=26)(batch)
    assert not torch.equal(other.images, out_a.images)
