"""The official GridMask approach (akuxcw/GridMask, ``imagenet_grid/utils/grid.py``), written
from that code's description for timing: a ``Grid`` callable builds one numpy mask per sample
(a square canvas as wide as the image diagonal, lines of width ``l = ceil(d·ratio)`` every
``d`` pixels zeroed by two Python loops, rotated with PIL, centre-cropped), copies it to the
image's device and multiplies; the ``GridMask`` ``nn.Module`` loops over the batch in Python.

Differences from the original, none of which change the cost: a seeded ``RandomState``
instead of the global numpy RNG, ``.to(img.device)`` instead of ``.cuda()``, and the
``mode=1`` (drop squares) ImageNet setting as in the paper's recipe.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image
from torch import nn


class Grid:
    """Per-sample GridMask of the official code (``mode=1`` keeps the lines, drops squares)."""

    def __init__(
        self,
        d1: int,
        d2: int,
        rotate: int = 1,
        ratio: float = 0.5,
        mode: int = 0,
        prob: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.d1, self.d2, self.rotate, self.ratio, self.mode = d1, d2, rotate, ratio, mode
        self.st_prob = self.prob = prob
        self.rng = np.random.RandomState(seed)

    def set_prob(self, epoch: int, max_epoch: int) -> None:
        self.prob = self.st_prob * min(1, epoch / max_epoch)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if self.rng.rand() > self.prob:
            return img
        h, w = img.size(1), img.size(2)
        # a square of the diagonal's side covers the image after any rotation
        hh = math.ceil(math.sqrt(h * h + w * w))
        d = self.rng.randint(self.d1, self.d2)
        ll = math.ceil(d * self.ratio)
        mask = np.ones((hh, hh), np.float32)
        st_h = self.rng.randint(d)
        st_w = self.rng.randint(d)
        for i in range(-1, hh // d + 1):
            s = d * i + st_h
            t = s + ll
            s, t = max(min(s, hh), 0), max(min(t, hh), 0)
            mask[s:t, :] *= 0
        for i in range(-1, hh // d + 1):
            s = d * i + st_w
            t = s + ll
            s, t = max(min(s, hh), 0), max(min(t, hh), 0)
            mask[:, s:t] *= 0
        r = self.rng.randint(self.rotate)
        mask_img = Image.fromarray(np.uint8(mask)).rotate(r)
        mask = np.asarray(mask_img)
        mask = mask[(hh - h) // 2 : (hh - h) // 2 + h, (hh - w) // 2 : (hh - w) // 2 + w]
        mask_t = torch.from_numpy(mask.copy()).float().to(img.device)
        if self.mode == 1:
            mask_t = 1 - mask_t
        return img * mask_t.expand_as(img)


class GridMask(nn.Module):
    """The official batch wrapper: ``forward`` applies :class:`Grid` sample by sample."""

    def __init__(
        self,
        d1: int,
        d2: int,
        rotate: int = 1,
        ratio: float = 0.5,
        mode: int = 0,
        prob: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.grid = Grid(d1, d2, rotate, ratio, mode, prob, seed)

    def set_prob(self, epoch: int, max_epoch: int) -> None:
        self.grid.set_prob(epoch, max_epoch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        n, c, h, w = x.size()
        y = [self.grid(x[i]) for i in range(n)]
        return torch.cat(y).view(n, c, h, w)
