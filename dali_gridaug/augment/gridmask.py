"""GridMask: drop a rotated grid of squares (Chen et al., 2020, arXiv:2001.04086).

Official-code semantics: d ~ U{d_min … d_max−1}, kept stripes of width
l = ceil(d·r) every d pixels, the (d−l)×(d−l) squares between them dropped (mode 1) or kept
(mode 0, reversed GridMask), rotated by U{0 … rotate−1} degrees, a uniform offset, applied
with probability p_e = P·min(1, e/ramp_epochs). Random GridMask drops each square only with
probability ``square_p``. In the graph the visibility mask comes from ``fn.grid_mask(tile=d,
ratio=(d−l)/d)`` on a ones image (mode 1) and its complement (mode 0). Random GridMask ORs
in a per-square visibility field: the ``S×S`` table of square coins, warped onto the rotated grid
by a nearest-neighbour ``fn.warp_affine`` (:func:`square_field`), so every variant runs on
DALI's operators.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from dali_gridaug._validate import check_choice, check_pair, check_range, check_type
from dali_gridaug.augment.base import (
    Backend,
    MaskAugment,
    Params,
    ParamSpec,
    SampleContext,
    ones_mask,
)
from dali_gridaug.augment.schedule import linear_ramp
from dali_gridaug.geometry import sample_grid
from dali_gridaug.kernels import grid_visible_mask, mix_by_mask


@dataclasses.dataclass(frozen=True)
class GridMask(MaskAugment):
    """GridMask configuration.

    Args:
        r: kept-stripe fraction of the period, in (0, 1) (ImageNet 0.6, CIFAR-10 0.4).
        d: ``(d_min, d_max)`` period range in pixels, d_max exclusive (ImageNet (96, 224)).
        rotate: rotation angles are drawn from ``{0 … rotate−1}`` degrees (1 = no rotation).
        mode: 1 = GridMask (drop squares), 0 = reversed GridMask (keep only the squares).
        p: maximum per-sample apply probability P.
        ramp_epochs: epochs over which the apply probability ramps linearly from 0 to P
            (0 = constant P).
        square_p: random GridMask (paper §4.1.3): each square is dropped with this probability
            (1.0 = standard GridMask).
        backend: see :class:`~dali_gridaug.augment.base.Augment`.

    Note:
        Per-sample: every sample draws its own d, offset, angle and apply coin.
    """

    r: float = 0.6
    d: tuple[int, int] = (96, 224)
    rotate: int = 360
    mode: int = 1
    p: float = 0.8
    ramp_epochs: int = 240
    square_p: float = 1.0
    backend: Backend = "auto"

    name: ClassVar[str] = "gridmask"
    kernel_params: ClassVar[tuple[str, ...]] = ("square_visible",)

    def __post_init__(self) -> None:
        check_range("r", self.r, 0, 1, low_open=True, high_open=True)
        check_pair("d", self.d, 1, integer=True)
        object.__setattr__(self, "d", tuple(self.d))
        check_type("rotate", self.rotate, int)
        check_range("rotate", self.rotate, 1, 360)
        check_choice("mode", self.mode, (0, 1))
        check_range("p", self.p, 0, 1)
        check_type("ramp_epochs", self.ramp_epochs, int)
        check_range("ramp_epochs", self.ramp_epochs, 0)
        check_range("square_p", self.square_p, 0, 1)
        super().__post_init__()

    def check_geometry(self, height: int, width: int, batch_size: int) -> None:
        super().check_geometry(height, width, batch_size)
        if self.d[0] > max(height, width):
            raise ValueError(
                f"GridMask: `d` min must be ≤ the image side {max(height, width)}, got {self.d}"
            )

    def scaled_to(self, size: int, reference: int = 224) -> GridMask:
        """The same config with ``d`` scaled from ``reference``-pixel images to ``size``."""
        lo = max(1, round(self.d[0] * size / reference))
        hi = max(lo + 1, round(self.d[1] * size / reference))
        return dataclasses.replace(self, d=(lo, hi))

    def apply_prob(self, epoch: int) -> float:
        """Per-sample apply probability in ``epoch``."""
        return linear_ramp(self.p, epoch, self.ramp_epochs)

    def squares(self, height: int, width: int) -> int:
        """Squares per axis that can touch an ``height×width`` image (random-variant table)."""
        return math.ceil(math.hypot(height, width) / self.d[0]) + 2

    def schema(self, height: int, width: int) -> tuple[ParamSpec, ...]:
        specs = (
            ParamSpec("applied", np.uint8),
            ParamSpec("tile", np.int32),
            ParamSpec("ratio", np.float32),
            ParamSpec("angle", np.float32),
            ParamSpec("shift_x", np.float32),
            ParamSpec("shift_y", np.float32),
        )
        if self.square_p < 1:
            s = self.squares(height, width)
            specs += (ParamSpec("square_visible", np.uint8, (s, s), emitted=False),)
            if self.resolve_backend() == "dali":
                specs += (
                    ParamSpec("field", np.uint8, (s, s, 1), emitted=False),
                    ParamSpec("field_matrix", np.float32, (2, 3), emitted=False),
                )
        return specs

    def sample(self, rng: np.random.Generator, ctx: SampleContext) -> Params:
        b, height, width = ctx.batch_size, ctx.height, ctx.width
        grid = sample_grid(rng, b, self.r, self.d, self.rotate)
        applied = rng.random(b) < self.apply_prob(ctx.epoch)
        params: Params = {
            "applied": applied.astype(np.uint8),
            "tile": grid.tile,
            "ratio": grid.ratio,
            "angle": grid.angle,
            "shift_x": grid.shift_x,
            "shift_y": grid.shift_y,
        }
        if self.square_p < 1:
            s = self.squares(height, width)
            params["square_visible"] = (rng.random((b, s, s)) >= self.square_p).astype(np.uint8)
            if self.resolve_backend() == "dali":
                params["field"], params["field_matrix"] = square_field(
                    params["square_visible"],
                    grid.tile,
                    grid.ratio,
                    grid.angle,
                    grid.shift_x,
                    grid.shift_y,
                    height,
                    width,
                )
        return params

    def visible_mask_dali(
        self, params: Mapping[str, Any], height: int, width: int, device: str
    ) -> Any:
        from nvidia.dali import fn, types

        ones = ones_mask(height, width, device)
        grid = fn.grid_mask(
            ones,
            tile=params["tile"],
            ratio=params["ratio"] * params["applied"],  # ratio 0 drops nothing
            angle=params["angle"],
            shift_x=params["shift_x"],
            shift_y=params["shift_y"],
        )
        if self.square_p < 1:  # random GridMask: a square is dropped only where its coin says
            field = fn.reshape(params["field"], layout="HWC")
            field = fn.warp_affine(
                field.gpu() if device == "gpu" else field,
                matrix=params["field_matrix"],
                size=[height, width],
                interp_type=types.INTERP_NN,
                fill_value=1,
                device=device,
            )
            grid = grid | field
        if self.mode == 1:
            return grid
        # reversed: keep exactly the squares mode 1 drops (where applied)
        return fn.cast(1 - grid * params["applied"], dtype=types.UINT8)

    def apply_xp(self, xp: ModuleType, images: Any, params: Mapping[str, Any]) -> Any:
        _, h, w, _ = images.shape
        applied = xp.asarray(params["applied"]).astype(bool)
        visible = grid_visible_mask(
            xp,
            h,
            w,
            params["tile"],
            params["ratio"],
            params["angle"],
            params["shift_x"],
            params["shift_y"],
            mode=self.mode,
            square_visible=params.get("square_visible"),
        )
        visible = xp.where(applied[:, None, None], visible, 1.0)
        return mix_by_mask(xp, images, visible)


def square_field(
    square_visible: np.ndarray,
    tile: np.ndarray,
    ratio: np.ndarray,
    angle: np.ndarray,
    shift_x: np.ndarray,
    shift_y: np.ndarray,
    height: int,
    width: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Random GridMask's per-square coins as a small image and the warp that lays it on the
    rotated grid: ``warp_affine(field, matrix)`` (nearest neighbour, DALI's pixel-centre
    convention ``src = A·(x + ½, y + ½) + t``) gives every pixel the coin of its square.

    In grid units (``fx``, ``fy`` of :func:`~dali_gridaug.kernels.grid_visible_mask`) a square
    is ``frac(fx) < ratio`` and ``frac(fy) < ratio``, and its coin is
    ``square_visible[floor(fy) mod S, floor(fx) mod S]``. The warp looks up at
    ``fx + (1 − ratio)/2`` (same for y): inside a square that has the same floor, and the
    lookup's cell edges fall mid-stripe, where the grid keeps the pixel whatever the coin,
    so rounding at a cell edge never changes the mask. The table is rolled so the cells the
    image touches start at index 1 (at most ``S − 1`` of them, see
    :meth:`GridMask.squares`).

    Args:
        square_visible: ``(B, S, S)`` uint8, 1 = that square stays visible (not dropped).
        tile: ``(B,)`` int32 period ``d`` in pixels.
        ratio: ``(B,)`` float32 dropped fraction of the period per axis.
        angle: ``(B,)`` float32 rotation in radians.
        shift_x: ``(B,)`` float32 grid offset in pixels along the rotated x axis.
        shift_y: ``(B,)`` float32 grid offset in pixels along the rotated y axis.
        height: image height H in pixels.
        width: image width W in pixels.

    Returns:
        ``field`` ``(B, S, S, 1)`` uint8 (HWC) and ``matrix`` ``(B, 2, 3)`` float32 (output
        pixel → field pixel).
    """
    b, size = square_visible.shape[0], square_visible.shape[-1]
    t = tile.astype(np.float64)
    c, s = np.cos(angle) / t, np.sin(angle) / t
    half = (1 - ratio.astype(np.float64)) / 2
    ox = half - shift_x / t  # u = x·c − y·s + ox
    oy = half - shift_y / t  # v = x·s + y·c + oy
    cx = np.array([0, width - 1, 0, width - 1], np.float64)[None]
    cy = np.array([0, 0, height - 1, height - 1], np.float64)[None]
    first_x = np.floor((cx * c[:, None] - cy * s[:, None]).min(1) + ox).astype(np.int64) - 1
    first_y = np.floor((cx * s[:, None] + cy * c[:, None]).min(1) + oy).astype(np.int64) - 1
    rows = (np.arange(size)[None] + first_y[:, None]) % size
    cols = (np.arange(size)[None] + first_x[:, None]) % size
    field = square_visible[np.arange(b)[:, None, None], rows[:, :, None], cols[:, None, :]]
    matrix = np.empty((b, 2, 3), np.float64)
    matrix[:, 0, 0], matrix[:, 0, 1] = c, -s
    matrix[:, 1, 0], matrix[:, 1, 1] = s, c
    matrix[:, 0, 2] = ox - first_x - (c - s) / 2
    matrix[:, 1, 2] = oy - first_y - (s + c) / 2
    return field[..., None].astype(np.uint8), matrix.astype(np.float32)
