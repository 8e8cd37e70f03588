"""GridMix: mix two images cell by cell on an n×n grid, with per-cell labels
(Baek, Bang & Shim, Pattern Recognition 2021, "GridMix: Strong regularization through local
context mapping"; no official code).

Per sample: partner B from a random permutation; M ∈ {0,1}^{n×n}, M_ij ~ Ber(p) (1 = cell of
A). Cell (i, j) covers rows [floor(i·H/n), floor((i+1)·H/n)) and likewise columns. λ = ΣM/n²;
patch labels are y_A where M = 1, else y_B. DALI expresses it with one ``fn.multi_paste`` of
the own image and the n² − ΣM cells taken from B (empty pastes for A's cells).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from dali_gridaug._validate import check_range, check_type
from dali_gridaug.augment.base import (
    Backend,
    LabelUpdate,
    MixAugment,
    Params,
    ParamSpec,
    SampleContext,
    paste_args,
    paste_specs,
)
from dali_gridaug.geometry import cell_boxes, random_partner
from dali_gridaug.kernels import cell_visible_mask, mix_by_mask


@dataclasses.dataclass(frozen=True)
class GridMix(MixAugment):
    """GridMix configuration.

    Args:
        n: grid side (cells per axis), ≥ 1 (default 4).
        p: probability that a cell is kept from the image itself, in [0, 1] (default 0.8).
        derangement: partners without fixed points (no self-mixing).
        backend: see :class:`~dali_gridaug.augment.base.Augment`.

    Note:
        Every sample is mixed (no apply probability): P(λ = 1) = p^(n²).
    """

    n: int = 4
    p: float = 0.8
    derangement: bool = False
    backend: Backend = "auto"

    name: ClassVar[str] = "gridmix"

    def __post_init__(self) -> None:
        check_type("n", self.n, int)
        check_range("n", self.n, 1)
        check_range("p", self.p, 0, 1)
        check_type("derangement", self.derangement, bool)
        super().__post_init__()

    def check_geometry(self, height: int, width: int, batch_size: int) -> None:
        super().check_geometry(height, width, batch_size)
        if self.n > min(height, width):
            raise ValueError(
                f"GridMix: `n` must be in [1, {min(height, width)}] (the image side), got {self.n}"
            )

    def schema(self, height: int, width: int) -> tuple[ParamSpec, ...]:
        n = self.n
        return (
            ParamSpec("lam", np.float32),
            ParamSpec("partner", np.int32),
            ParamSpec("cells", np.uint8, (n, n)),
            *paste_specs(n * n),
        )

    def sample(self, rng: np.random.Generator, ctx: SampleContext) -> Params:
        b, n, height, width = ctx.batch_size, self.n, ctx.height, ctx.width
        cells = (rng.random((b, n, n)) < self.p).astype(np.uint8)
        partner = random_partner(rng, b, self.derangement)
        # the own image whole, then every cell that comes from the partner
        boxes = np.broadcast_to(cell_boxes(height, width, n), (b, n * n, 4))
        boxes = np.where(cells.reshape(b, n * n, 1) == 1, 0, boxes)
        return {
            "lam": cells.reshape(b, -1).mean(1).astype(np.float32),
            "partner": partner,
            "cells": cells,
            **paste_args(partner, boxes, height, width, ctx.flip),
        }

    def unmixed(self, ctx: SampleContext) -> Params:
        # every cell the sample's own: patch labels all its label
        cells = np.ones((ctx.batch_size, self.n, self.n), np.uint8)
        return {**super().unmixed(ctx), "cells": cells}

    def labels(
        self, params: Mapping[str, Any], y: Any, num_classes: int, smoothing: float = 0.0
    ) -> LabelUpdate:
        from dali_gridaug.labels import patch_labels

        update = super().labels(params, y, num_classes, smoothing)
        cells = patch_labels(y, update.partner, params["cells"])
        return dataclasses.replace(update, patch_labels=cells)

    def apply_xp(self, xp: ModuleType, images: Any, params: Mapping[str, Any]) -> Any:
        _, h, w, _ = images.shape
        return mix_by_mask(
            xp, images, cell_visible_mask(xp, h, w, params["cells"]), params["partner"]
        )
