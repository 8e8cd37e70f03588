"""The host-drawn random-resized crop (``Preset(invariant_crop=True)``) is torchvision's
``RandomResizedCrop.get_params``, exactly: :func:`decode.rrc_draws` on the host and
:func:`decode.rrc_window` in a real DALI CPU graph, against a line-by-line transcription of
torchvision's loop in which each of its random calls reads the same uniform (``randint(0,
n)`` → ``⌊u·n⌋``). Shapes cover the first-attempt win, late attempts, and both fallbacks
(images too wide and too tall for the aspect range) and images too small for most attempts.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from dali_gridaug.decode import RRC_ATTEMPTS, rrc_draws, rrc_window

SCALE, RATIO = (0.08, 1.0), (3 / 4, 4 / 3)
SHAPES = [(375, 500), (500, 375), (224, 224), (10, 400), (400, 10), (3, 3), (37, 1000), (2, 9)]


def torchvision_window(height: int, width: int, u: np.ndarray) -> tuple[int, int, int, int]:
    """torchvision 0.2x ``RandomResizedCrop.get_params`` with its draws read from ``u``
    (``(2A + 2,)``: A area uniforms, A aspect uniforms, the y and x offset uniforms)."""
    area = height * width
    log_ratio = (math.log(RATIO[0]), math.log(RATIO[1]))
    for k in range(RRC_ATTEMPTS):
        target_area = area * (SCALE[0] + u[k] * (SCALE[1] - SCALE[0]))
        aspect_ratio = math.exp(log_ratio[0] + u[RRC_ATTEMPTS + k] * (log_ratio[1] - log_ratio[0]))
        w = int(round(math.sqrt(target_area * aspect_ratio)))
        h = int(round(math.sqrt(target_area / aspect_ratio)))
        if 0 < w <= width and 0 < h <= height:
            i = int(u[-2] * (height - h + 1))
            j = int(u[-1] * (width - w + 1))
            return i, j, h, w
    in_ratio = width / height
    if in_ratio < min(RATIO):
        w = width
        h = int(round(w / min(RATIO)))
    elif in_ratio > max(RATIO):
        h = height
        w = int(round(h * max(RATIO)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def dali_windows(shapes: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``(N, 4)`` ``(y, x, h, w)`` of :func:`rrc_window` run by DALI's CPU backend."""
    from nvidia.dali import fn, pipeline_def

    draws = rrc_draws(u, SCALE, RATIO)
    names = ["shape", *draws]
    arrays = [shapes.astype(np.float64), *draws.values()]

    @pipeline_def(batch_size=len(shapes), num_threads=1, device_id=None)
    def pipe():
        fed = fn.external_source(source=lambda: arrays, num_outputs=len(names), batch=True)
        anchor, size = rrc_window(fed[0], dict(zip(names[1:], fed[1:], strict=True)))
        return fn.cat(anchor, size)

    p = pipe()
    p.build()
    (out,) = p.run()
    return np.stack([np.asarray(t) for t in out]).astype(np.int64)


@pytest.fixture(scope="module")
def compared() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 64
    shapes = np.array([(*SHAPES[i % len(SHAPES)], 3) for i in range(n)])
    u = rng.random((n, 2 * RRC_ATTEMPTS + 2))
    u[::5, :RRC_ATTEMPTS] = 0.999  # large areas: late attempts and fallbacks
    ours = dali_windows(shapes, u)
    ref = np.array([torchvision_window(h, w, row) for (h, w, _), row in zip(shapes, u)])
    return shapes, ours, ref


def test_window_is_torchvisions_get_params_exactly(compared) -> None:
    shapes, ours, ref = compared
    np.testing.assert_array_equal(ours, ref)
    y, x, h, w = ours.T
    assert (h >= 1).all() and (w >= 1).all()
    assert (y + h <= shapes[:, 0]).all() and (x + w <= shapes[:, 1]).all()


def test_cases_reach_every_branch(compared) -> None:
    """The comparison means something: first-attempt wins, fallbacks of both kinds, and
    windows that are neither the whole image nor centred."""
    shapes, ours, _ = compared
    whole = (ours[:, 2] == shapes[:, 0]) & (ours[:, 3] == shapes[:, 1])
    clamped_w = (ours[:, 3] == shapes[:, 1]) & (ours[:, 2] < shapes[:, 0])  # too tall
    clamped_h = (ours[:, 2] == shapes[:, 0]) & (ours[:, 3] < shapes[:, 1])  # too wide
    assert whole.any() and clamped_w.any() and clamped_h.any()
    assert (~whole & ((ours[:, 0] > 0) | (ours[:, 1] > 0))).sum() > 20
