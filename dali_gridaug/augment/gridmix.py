"""GridMix: mix two images cell by cell on an n×n grid, with per-cell labels
(Baek, Bang & Shim, Pattern Recognition 2021, "GridMix: Strong regularization through local
context mapping"; no official code: SPEC §GridMix is the reference).

Per sample: partner B from a random permutation; M ∈ {0,1}^{n×n}, M_ij ~ Ber(p) (1 = cell of
A). Cell (i, j) covers rows [floor(i·H/n), floor((i+1)·H/n)) and likewise columns. λ = ΣM/n²;
patch labels are y_A where M = 1, else y_B. DALI expresses it with one ``fn.multi_paste`` of
n² cells, each taken from A or B.
"""

from __future__ import annotations

import dataclasses
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from dali_gridaug._validate import check_range, check_type
from dali_gridaug.augment.base import Augment, Backend, Params, identity_partner
from dali_gridaug.augment.cutmix import random_partner
from dali_gridaug.kernels import cell_keep_mask, mix_by_mask


@dataclasses.dataclass(frozen=True)
class GridMix(Augment):
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

    mixing: ClassVar[bool] = True
    name: ClassVar[str] = "gridmix"
    keys: ClassVar[tuple[str, ...]] = ("lam", "partner", "cells")

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

    def sample(
        self, rng: np.random.Generator, batch_size: int, height: int, width: int, epoch: int
    ) -> Params:
        b, n = batch_size, self.n
        cells = (rng.random((b, n, n)) < self.p).astype(np.uint8)
        partner = random_partner(rng, b, self.derangement)
        ys = (np.arange(n + 1) * height) // n
        xs = (np.arange(n + 1) * width) // n
        anchors = np.stack(np.meshgrid(ys[:-1], xs[:-1], indexing="ij"), -1).reshape(1, n * n, 2)
        shapes = np.stack(np.meshgrid(np.diff(ys), np.diff(xs), indexing="ij"), -1)
        ids = np.where(cells.reshape(b, n * n), identity_partner(b)[:, None], partner[:, None])
        return {
            "lam": cells.reshape(b, -1).mean(1).astype(np.float32),
            "partner": partner,
            "cells": cells,
            "_ids": ids.astype(np.int32),
            "_anchors": np.broadcast_to(anchors, (b, n * n, 2)).astype(np.int32),
            "_shapes": np.broadcast_to(shapes.reshape(1, n * n, 2), (b, n * n, 2)).astype(np.int32),
        }

    def apply_dali(self, images: Any, params: dict[str, Any], height: int, width: int) -> Any:
        from dali_gridaug.augment.cutmix import multi_paste

        return multi_paste(images, params)

    def apply_xp(self, xp: ModuleType, images: Any, params: dict[str, Any]) -> Any:
        _, h, w, _ = images.shape
        return mix_by_mask(xp, images, cell_keep_mask(xp, h, w, params["cells"]), params["partner"])
