"""xp kernels: invariants on NumPy; the mask kernels on torch equal NumPy; on CuPy they agree
(GPU only)."""

from __future__ import annotations

import numpy as np
import pytest

from dali_gridaug import CutMix, GridMask, GridMix, RandomErasing
from dali_gridaug.augment import SampleContext
from dali_gridaug.kernels import box_visible_mask, cell_visible_mask, grid_visible_mask, mix_by_mask

AUGS = [
    GridMask(r=0.5, d=(8, 20), p=1.0, ramp_epochs=0),
    GridMask(mode=0, d=(8, 20), p=1.0, ramp_epochs=0),
    GridMask(square_p=0.5, d=(8, 20), p=1.0, ramp_epochs=0),
    RandomErasing(p=1.0, backend="kernel"),
    CutMix(mode="elem"),
    GridMix(n=3),
]


def _params(aug, b=6, h=30, w=40, seed=0):
    return aug.sample(np.random.default_rng(seed), SampleContext(b, h, w))


@pytest.mark.parametrize("aug", AUGS, ids=lambda a: type(a).__name__)
def test_kernel_invariants(aug) -> None:
    x = np.random.default_rng(1).standard_normal((6, 30, 40, 3)).astype(np.float32)
    before = x.copy()
    p = _params(aug)
    out = aug.apply_xp(np, x, p)
    assert np.array_equal(x, before)  # inputs untouched
    assert out.dtype == x.dtype and out.shape == x.shape
    assert np.array_equal(out, aug.apply_xp(np, x, p))  # replay: same params, same output
    if not aug.mixing and not isinstance(aug, RandomErasing):  # batched equals one-by-one
        for i in range(6):
            one = {k: v[i : i + 1] for k, v in p.items()}
            assert np.array_equal(aug.apply_xp(np, x[i : i + 1], one)[0], out[i])


def test_masks_on_known_geometry() -> None:
    m = grid_visible_mask(np, 8, 8, [4], [0.5], [0.0], [0.0], [0.0])[0]
    dropped = np.zeros((8, 8), bool)
    for y in range(8):
        for x in range(8):
            dropped[y, x] = (y % 4 < 2) and (x % 4 < 2)
    assert np.array_equal(m == 0, dropped)
    assert np.array_equal(
        grid_visible_mask(np, 8, 8, [4], [0.5], [0.0], [0.0], [0.0], mode=0)[0], 1 - m
    )
    assert box_visible_mask(np, 4, 4, np.array([[1, 1, 3, 3]]))[0].sum() == 12
    cells = cell_visible_mask(np, 7, 5, np.array([[[1, 0], [0, 1]]]))[0]
    assert cells[:3, :2].all() and not cells[:3, 2:].any() and cells[3:, 2:].all()
    assert mix_by_mask(np, np.ones((1, 2, 2, 1)), np.zeros((1, 2, 2)), fill=7.0).max() == 7


def test_mask_kernels_on_torch_equal_numpy() -> None:
    """The Keep stage runs the mask kernels with ``xp=torch`` on its own tensors: same masks,
    bit for bit, as NumPy (a planted off-by-one in the box rule would break the equality).
    """
    import torch

    rng = np.random.default_rng(3)
    b, h, w = 5, 30, 40
    grid = [
        rng.integers(6, 20, b).astype(np.float32),
        rng.uniform(0.2, 0.7, b).astype(np.float32),
        np.deg2rad(rng.integers(0, 360, b)).astype(np.float32),
        rng.uniform(0, 6, b).astype(np.float32),
        rng.uniform(0, 6, b).astype(np.float32),
    ]
    square_visible = rng.integers(0, 2, (b, 8, 8)).astype(np.uint8)
    for mode in (0, 1):
        ref = grid_visible_mask(np, h, w, *grid, mode=mode, square_visible=square_visible)
        squares = torch.from_numpy(square_visible)
        got = grid_visible_mask(
            torch, h, w, *map(torch.from_numpy, grid), mode=mode, square_visible=squares
        )
        assert got.dtype == torch.float32 and np.array_equal(got.numpy(), ref)
    y0, x0 = rng.integers(0, h, b), rng.integers(0, w, b)
    boxes = np.stack([y0, x0, y0 + rng.integers(0, 12, b), x0 + rng.integers(0, 12, b)], 1)
    boxes = np.minimum(boxes, [h, w, h, w])
    ref = box_visible_mask(np, h, w, boxes)
    assert np.array_equal(box_visible_mask(torch, h, w, torch.from_numpy(boxes)).numpy(), ref)
    assert ref.min() == 0  # some box is non-empty
    cells = rng.integers(0, 2, (b, 3, 3))
    ref = cell_visible_mask(np, h, w, cells)
    assert np.array_equal(cell_visible_mask(torch, h, w, torch.from_numpy(cells)).numpy(), ref)


def test_empty_batch() -> None:
    assert grid_visible_mask(np, 5, 5, [], [], [], [], []).shape == (0, 5, 5)
    assert box_visible_mask(np, 5, 5, np.zeros((0, 4), int)).shape == (0, 5, 5)


@pytest.mark.gpu
@pytest.mark.parametrize("aug", AUGS, ids=lambda a: type(a).__name__)
def test_cupy_matches_numpy(aug) -> None:
    import cupy

    x = np.random.default_rng(1).standard_normal((6, 30, 40, 3)).astype(np.float32)
    p = _params(aug)
    ref = aug.apply_xp(np, x, p)
    out = aug.apply_xp(cupy, cupy.asarray(x), {k: cupy.asarray(v) for k, v in p.items()})
    # the noise fill is a function of the device-side seed: the same on both (up to the
    # last bit of log/cos/sin)
    assert (np.abs(cupy.asnumpy(out) - ref) > 1e-5).mean() < 1e-3


@pytest.mark.gpu
@pytest.mark.parametrize("aug", AUGS[:2] + AUGS[4:], ids=lambda a: type(a).__name__)
def test_gpu_pipeline_kernel_backend_matches_cpu(color_data, aug) -> None:
    from dataclasses import replace

    from dali_gridaug import create_loader

    def run(device):
        loader = create_loader(
            color_data,
            batch_size=16,
            image_size=48,
            mean=0,
            std=1,
            seed=3,
            augment=[replace(aug, backend="kernel")],
            device=device,
        )
        return next(iter(loader))

    a, b = run("cpu"), run("gpu")
    assert b.images.is_cuda and np.array_equal(a.lam.numpy(), b.lam.cpu().numpy())
