"""CutMix: paste a box from a partner image (Yun et al., 2019, arXiv:1905.04899).

Official clovaai semantics (SPEC §CutMix): λ ~ Beta(α, α); box side per axis
``s = int(S·sqrt(1−λ))``; centre uniform over pixels; box ``[c − s//2, c + s//2)`` clipped;
with ``correct_lam`` λ is recomputed from the clipped area, so λ equals the fraction of
pixels of the image itself exactly. DALI expresses it with ``fn.multi_paste`` (own image, then
the partner's box).
"""

from __future__ import annotations

import dataclasses
from types import ModuleType
from typing import Any, ClassVar, Literal

import numpy as np

from dali_gridaug._validate import check_choice, check_range, check_type
from dali_gridaug.augment.base import Augment, Backend, Params, identity_partner
from dali_gridaug.kernels import box_keep_mask, mix_by_mask


@dataclasses.dataclass(frozen=True)
class CutMix(Augment):
    """CutMix configuration.

    Args:
        alpha: Beta(α, α) concentration, > 0 (ImageNet 1.0).
        p: apply probability (per batch in ``"batch"`` mode, per sample in ``"elem"``).
        mode: ``"batch"``: one λ, one box, one coin for the batch (official code);
            ``"elem"``: per-sample λ, box and coin.
        correct_lam: recompute λ from the clipped box (official code; default True).
        label_smoothing: timm-style smoothing ε of both one-hot targets.
        derangement: partners form a permutation without fixed points (no self-mixing).
        backend: see :class:`~dali_gridaug.augment.base.Augment`.

    Note:
        Partners are one random permutation of the batch; samples not mixed have λ = 1 and
        themselves as partner.
    """

    alpha: float = 1.0
    p: float = 1.0
    mode: Literal["batch", "elem"] = "batch"
    correct_lam: bool = True
    label_smoothing: float = 0.0
    derangement: bool = False
    backend: Backend = "auto"

    mixing: ClassVar[bool] = True
    name: ClassVar[str] = "cutmix"
    keys: ClassVar[tuple[str, ...]] = ("lam", "partner", "box")

    def __post_init__(self) -> None:
        check_range("alpha", self.alpha, 0, low_open=True)
        check_range("p", self.p, 0, 1)
        check_choice("mode", self.mode, ("batch", "elem"))
        check_type("correct_lam", self.correct_lam, bool)
        check_range("label_smoothing", self.label_smoothing, 0, 1, high_open=True)
        check_type("derangement", self.derangement, bool)
        super().__post_init__()

    def sample(
        self, rng: np.random.Generator, batch_size: int, height: int, width: int, epoch: int
    ) -> Params:
        b = batch_size
        n = 1 if self.mode == "batch" else b
        lam = rng.beta(self.alpha, self.alpha, size=n)
        cut = np.sqrt(1.0 - lam)
        sh, sw = (height * cut).astype(np.int64), (width * cut).astype(np.int64)
        cy, cx = rng.integers(0, height, n), rng.integers(0, width, n)
        box = np.stack(
            [
                np.clip(cy - sh // 2, 0, height),
                np.clip(cx - sw // 2, 0, width),
                np.clip(cy + sh // 2, 0, height),
                np.clip(cx + sw // 2, 0, width),
            ],
            axis=1,
        )
        applied = rng.random(n) < self.p
        box = np.broadcast_to(np.where(applied[:, None], box, 0), (b, 4))
        if self.correct_lam:
            lam = 1.0 - (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1]) / (height * width)
        else:
            lam = np.broadcast_to(np.where(applied, lam, 1.0), (b,))
        partner = random_partner(rng, b, self.derangement)
        mixed = (box[:, 2] > box[:, 0]) & (box[:, 3] > box[:, 1])
        partner = np.where(mixed, partner, identity_partner(b)).astype(np.int32)
        return {
            "lam": np.ascontiguousarray(lam, np.float32),
            "partner": partner,
            "box": np.ascontiguousarray(box, np.int32),
            **paste_args(partner, box[:, None, :], height, width),
        }

    def apply_dali(self, images: Any, params: dict[str, Any], height: int, width: int) -> Any:
        return multi_paste(images, params)

    def apply_xp(self, xp: ModuleType, images: Any, params: dict[str, Any]) -> Any:
        _, h, w, _ = images.shape
        return mix_by_mask(xp, images, box_keep_mask(xp, h, w, params["box"]), params["partner"])


def random_partner(rng: np.random.Generator, batch_size: int, derangement: bool) -> np.ndarray:
    """A random permutation of ``range(batch_size)`` (without fixed points if ``derangement``,
    by a uniformly random cyclic shift of a random order).
    """
    perm = rng.permutation(batch_size)
    if not derangement:
        return perm.astype(np.int32)
    out = np.empty(batch_size, np.int64)
    out[perm] = np.roll(perm, -int(rng.integers(1, batch_size)))
    return out.astype(np.int32)


def paste_args(partner: np.ndarray, boxes: np.ndarray, height: int, width: int) -> Params:
    """``fn.multi_paste`` arguments: paste the own image whole, then each partner box.

    Args:
        partner: ``(B,)`` partner positions.
        boxes: ``(B, k, 4)`` boxes ``(y0, x0, y1, x1)`` taken from the partner.

    Returns:
        graph-only ``_ids (B, k+1)``, ``_anchors (B, k+1, 2)``, ``_shapes (B, k+1, 2)`` int32.
    """
    b, k, _ = boxes.shape
    ids = np.concatenate([identity_partner(b)[:, None], np.repeat(partner[:, None], k, 1)], 1)
    anchors = np.concatenate([np.zeros((b, 1, 2), np.int64), boxes[:, :, :2]], 1)
    full = np.broadcast_to(np.array([height, width]), (b, 1, 2))
    shapes = np.concatenate([full, boxes[:, :, 2:] - boxes[:, :, :2]], 1)
    return {
        "_ids": ids.astype(np.int32),
        "_anchors": anchors.astype(np.int32),
        "_shapes": shapes.astype(np.int32),
    }


def multi_paste(images: Any, params: dict[str, Any]) -> Any:
    """Apply :func:`paste_args` with ``fn.multi_paste`` (HWC input)."""
    from nvidia.dali import fn

    return fn.multi_paste(
        images,
        in_ids=params["_ids"],
        in_anchors=params["_anchors"],
        shapes=params["_shapes"],
        out_anchors=params["_anchors"],
    )
