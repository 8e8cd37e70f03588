""":mod:`dali_gridaug.geometry`, rule by rule, against the official code's formulas written
out (clovaai CutMix and timm ``rand_bbox``, uoguelph-mlrg Cutout, akuxcw GridMask) and exact
small cases: box sides, the clip and inside placements, areas, mirroring, GridMask's stripe
and draw ranges, partners and GridMix cells. Pure NumPy, fast (issue 23's mutation targets).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dali_gridaug import geometry as g


def test_cut_sides_is_clovaais_int_of_s_sqrt_one_minus_lambda() -> None:
    lam = np.array([0.0, 0.25, 0.5, 0.9, 1.0])
    h, w = g.cut_sides(lam, 100, 37)
    want_h = [int(100 * math.sqrt(1 - x)) for x in lam]
    want_w = [int(37 * math.sqrt(1 - x)) for x in lam]
    assert h.tolist() == want_h and w.tolist() == want_w
    assert h.dtype == np.int64 and w.dtype == np.int64
    # a float32 λ is widened first: float32 arithmetic on this λ would give 201, not 200
    lam32 = np.array([0.1948143094778061], np.float32)
    assert g.cut_sides(lam32, 224, 224)[0].tolist() == [200]


def test_centred_box_is_the_clip_rule() -> None:
    cy, cx = np.array([0, 5, 9, 4]), np.array([9, 0, 5, 4])
    y0, x0, y1, x1 = g.centred_box(cy, cx, np.array([4, 5, 6, 20]), np.array([2, 3, 4, 1]), 10, 10)
    assert y0.tolist() == [0, 3, 6, 0]  # c − s//2, clipped at 0
    assert y1.tolist() == [2, 7, 10, 10]  # c + s//2, clipped at H
    assert x0.tolist() == [8, 0, 3, 4]
    assert x1.tolist() == [10, 1, 7, 4]  # width 1 → s//2 = 0: an empty box, as the official
    # a centre on the first row/column with side 1 is the empty box [0, 0), not [0, 1)
    y0, x0, y1, x1 = g.centred_box(np.array([0]), np.array([0]), np.array([1]), np.array([1]), 8, 8)
    assert (y0.tolist(), x0.tolist(), y1.tolist(), x1.tolist()) == ([0], [0], [0], [0])
    t = g.centred_box(torch.tensor([5]), torch.tensor([5]), 4, 4, 8, 8)
    assert [int(v) for v in t] == [3, 3, 7, 7]


def test_clip_rule_draws_centres_over_every_pixel() -> None:
    rng = np.random.default_rng(0)
    boxes = g.sample_box(rng, np.zeros(20000, np.int64), np.zeros(20000, np.int64), 5, 3, "clip")
    assert boxes.dtype == np.int64 and boxes.shape == (20000, 4)
    # zero sides: the box is the centre itself; every row 0…4 and column 0…2 appears
    assert set(boxes[:, 0].tolist()) == set(range(5)) and set(boxes[:, 1].tolist()) == {0, 1, 2}
    counts = np.bincount(boxes[:, 0], minlength=5)
    assert counts.min() > 3600  # uniform: 4000 each
    again = g.sample_box(np.random.default_rng(0), np.zeros(3), np.zeros(3), 5, 3, "clip")
    r = np.random.default_rng(0)
    cy, cx = r.integers(0, 5, 3), r.integers(0, 3, 3)
    assert again[:, 0].tolist() == cy.tolist() and again[:, 1].tolist() == cx.tolist()


def test_inside_rule_places_the_whole_box_uniformly() -> None:
    rng = np.random.default_rng(1)
    n = 30000
    sh, sw = np.full(n, 3), np.full(n, 10)
    boxes = g.sample_box(rng, sh, sw, 6, 8, "inside")
    # height 3 in 6 rows: top ∈ {0…3}; width 10 > 8: the box is the whole width
    assert set(boxes[:, 0].tolist()) == {0, 1, 2, 3}
    assert (boxes[:, 2] - boxes[:, 0] == 3).all()
    assert (boxes[:, 1] == 0).all() and (boxes[:, 3] == 8).all()
    assert np.bincount(boxes[:, 0]).min() > 7000  # uniform: 7500 each
    # float sides still give int64 boxes (the sides are cast first)
    for rule in ("clip", "inside"):
        out = g.sample_box(rng, np.array([2.0, 3.0]), np.array([1.0, 4.0]), 6, 8, rule)
        assert out.dtype == np.int64, rule
    with pytest.raises(ValueError, match="`rule` must be 'clip' or 'inside', got 'x'"):
        g.sample_box(rng, sh, sw, 6, 8, "x")


def test_timm_box_is_timms_rand_bbox_and_rand_bbox_minmax_written_out() -> None:
    lam = np.random.default_rng(2).uniform(0, 1, 500)
    box = g.sample_timm_box(np.random.default_rng(3), lam, 20, 13)
    r = np.random.default_rng(3)
    cy, cx = r.integers(0, 20, 500), r.integers(0, 13, 500)
    ch = np.array([int(20 * math.sqrt(1 - x)) for x in lam])
    cw = np.array([int(13 * math.sqrt(1 - x)) for x in lam])
    # timm's end is c + (s+1)//2 (the clovaai rule's is c + s//2)
    want = [cy - ch // 2, cx - cw // 2, cy + (ch + 1) // 2, cx + (cw + 1) // 2]
    want = np.stack(want, 1).clip(0, [20, 13, 20, 13])
    assert box.dtype == np.int64 and np.array_equal(box, want)
    box = g.sample_timm_box(np.random.default_rng(4), lam, 20, 13, (0.25, 0.75))
    r = np.random.default_rng(4)
    h, w = r.integers(5, 15, 500), r.integers(3, 9, 500)
    y0, x0 = r.integers(0, 20 - h + 1), r.integers(0, 13 - w + 1)
    assert np.array_equal(box, np.stack([y0, x0, y0 + h, x0 + w], 1))
    assert (box[:, 2] <= 20).all() and (box[:, 3] <= 13).all()  # fully inside


def test_box_area() -> None:
    boxes = np.array([[0, 0, 2, 3], [5, 5, 5, 9], [4, 4, 2, 9], [1, 2, 3, 1]])
    assert g.box_area(boxes).tolist() == [6, 0, 0, 0]
    assert g.box_area(torch.tensor([[1, 1, 4, 3]])).tolist() == [6]


def test_mirror_boxes() -> None:
    boxes = np.array([[0, 1, 4, 3], [2, 0, 5, 10]])
    out = g.mirror_boxes(boxes, 10, np.array([1, 0]))
    assert out.tolist() == [[0, 7, 4, 9], [2, 0, 5, 10]]
    assert boxes.tolist() == [[0, 1, 4, 3], [2, 0, 5, 10]]  # not in place
    assert g.mirror_boxes(boxes, 10, None) is boxes
    many = np.array([[[0, 1, 2, 2], [0, 0, 1, 5]]])  # (N, k, 4)
    assert g.mirror_boxes(many, 5, np.array([1])).tolist() == [[[0, 3, 2, 4], [0, 0, 1, 5]]]


def test_grid_stripe_is_float64_ceil() -> None:
    # float64 as the official code: 100 · 0.6 is 60.0 exactly (float32 0.6 would give 61)
    assert g.grid_stripe(np.array([100, 7, 32]), 0.6).tolist() == [60, 5, 20]
    assert g.grid_stripe(np.array([10]), 1.0).tolist() == [10]
    assert g.grid_stripe(np.array([96]), 0.5).dtype == np.int64


def test_sample_grid_draw_order_and_ranges() -> None:
    """The official ranges: d ∈ {d_min … d_max − 1}, angle ∈ {0 … rotate − 1}, offsets ∈
    {0 … d − 1}; drawn in that order from one generator."""
    n = 4000
    p = g.sample_grid(np.random.default_rng(3), n, 0.6, (8, 12), 5)
    r = np.random.default_rng(3)
    tile = r.integers(8, 12, size=n)
    deg = r.integers(0, 5, size=n)
    sx, sy = r.integers(0, tile), r.integers(0, tile)
    assert p.tile.tolist() == tile.tolist() and p.degrees.tolist() == deg.tolist()
    assert p.shift_x.tolist() == sx.tolist() and p.shift_y.tolist() == sy.tolist()
    assert set(p.tile.tolist()) == {8, 9, 10, 11} and set(p.degrees.tolist()) == set(range(5))
    assert (p.shift_x < p.tile).all() and p.shift_x.min() == 0
    assert p.tile.dtype == np.int32 and p.degrees.dtype == np.int64
    assert p.ratio.dtype == np.float32 and p.shift_x.dtype == p.shift_y.dtype == np.float32
    l_kept = np.ceil(tile * 0.6)
    np.testing.assert_allclose(p.ratio, (tile - l_kept) / tile, rtol=1e-6)
    np.testing.assert_allclose(p.angle, deg * np.pi / 180, rtol=1e-6)
    assert p.angle.dtype == np.float32


def test_random_partner() -> None:
    for b in (2, 3, 8, 33):
        for seed in range(20):
            perm = g.random_partner(np.random.default_rng(seed), b, derangement=True)
            assert perm.dtype == np.int32 and sorted(perm.tolist()) == list(range(b))
            assert (perm != np.arange(b)).all()
    plain = g.random_partner(np.random.default_rng(5), 8, derangement=False)
    assert plain.tolist() == np.random.default_rng(5).permutation(8).tolist()
    assert plain.dtype == np.int32
    # every shift 1 … B−1 is reachable (not always the same cycle)
    shifts = set()
    for seed in range(200):
        r = np.random.default_rng(seed)
        order = r.permutation(5)
        perm = g.random_partner(np.random.default_rng(seed), 5, derangement=True)
        shifts.add(int(np.where(order == perm[order[0]])[0][0]))
    assert shifts == {1, 2, 3, 4}


def test_identity_partner() -> None:
    p = g.identity_partner(4)
    assert p.tolist() == [0, 1, 2, 3] and p.dtype == np.int32


def test_cells() -> None:
    assert g.cell_bounds(10, 3).tolist() == [0, 3, 6, 10]
    assert g.cell_bounds(7, 7).tolist() == list(range(8))
    assert g.cell_bounds(10, 3).dtype == np.int64
    boxes = g.cell_boxes(4, 6, 2)
    assert boxes.tolist() == [[0, 0, 2, 3], [0, 3, 2, 6], [2, 0, 4, 3], [2, 3, 4, 6]]
    assert boxes.dtype == np.int64
