"""GridMask: drop a rotated grid of squares (Chen et al., 2020, arXiv:2001.04086).

Official-code semantics (SPEC §GridMask): d ~ U{d_min … d_max−1}, kept stripes of width
l = ceil(d·r) every d pixels, the (d−l)×(d−l) squares between them dropped (mode 1) or kept
(mode 0, reversed GridMask), rotated by U{0 … rotate−1} degrees, a uniform offset, applied
with probability p_e = P·min(1, e/ramp_epochs). Random GridMask drops each square only with
probability ``square_p``. DALI's ``fn.grid_mask(tile=d, ratio=(d−l)/d)`` expresses mode 1.
"""

from __future__ import annotations

import dataclasses
import math
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from dali_gridaug._validate import check_choice, check_pair, check_range, check_type
from dali_gridaug.augment.base import Augment, Backend, Params, to_radians
from dali_gridaug.augment.schedule import linear_ramp
from dali_gridaug.kernels import grid_keep_mask, mix_by_mask


@dataclasses.dataclass(frozen=True)
class GridMask(Augment):
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
    keys: ClassVar[tuple[str, ...]] = ("applied", "tile", "ratio", "angle", "shift_x", "shift_y")

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

    def backends(self) -> tuple[str, ...]:
        if self.mode == 0 or self.square_p < 1:
            return ("kernel",)
        return ("dali", "kernel")

    def _why_kernel_only(self) -> str:
        return "fn.grid_mask has no reversed mode and no random squares"

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

    def sample(
        self, rng: np.random.Generator, batch_size: int, height: int, width: int, epoch: int
    ) -> Params:
        b = batch_size
        d = rng.integers(self.d[0], self.d[1], size=b)
        l = np.ceil(d * self.r)  # noqa: E741  (the paper's name)
        applied = rng.random(b) < self.apply_prob(epoch)
        params: Params = {
            "applied": applied.astype(np.uint8),
            "tile": d.astype(np.int32),
            # dropped fraction of the period (DALI's `ratio`); l uses float64 ceil like the
            # official code (d=100, r=0.6 gives l=61)
            "ratio": ((d - l) / d).astype(np.float32),
            "angle": to_radians(rng.integers(0, self.rotate, size=b)),
            "shift_x": rng.integers(0, d).astype(np.float32),
            "shift_y": rng.integers(0, d).astype(np.float32),
        }
        if self.square_p < 1:
            s = self.squares(height, width)
            params["_square_keep"] = (rng.random((b, s, s)) >= self.square_p).astype(np.uint8)
        return params

    def apply_dali(self, images: Any, params: dict[str, Any], height: int, width: int) -> Any:
        from nvidia.dali import fn

        return fn.grid_mask(
            images,
            tile=params["tile"],
            ratio=params["ratio"] * params["applied"],  # ratio 0 drops nothing
            angle=params["angle"],
            shift_x=params["shift_x"],
            shift_y=params["shift_y"],
        )

    def apply_xp(self, xp: ModuleType, images: Any, params: dict[str, Any]) -> Any:
        _, h, w, _ = images.shape
        applied = xp.asarray(params["applied"]).astype(bool)
        keep = grid_keep_mask(
            xp,
            h,
            w,
            params["tile"],
            params["ratio"],
            params["angle"],
            params["shift_x"],
            params["shift_y"],
            mode=self.mode,
            square_keep=params.get("_square_keep"),
        )
        keep = xp.where(applied[:, None, None], keep, 1.0)
        return mix_by_mask(xp, images, keep)
