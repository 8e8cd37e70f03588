"""CutMix: paste a box from a partner image (Yun et al., 2019, arXiv:1905.04899).

Official clovaai semantics: λ ~ Beta(α, α); box side per axis
``s = int(S·sqrt(1−λ))``; centre uniform over pixels; box ``[c − s//2, c + s//2)`` clipped;
with ``correct_lam`` λ is recomputed from the clipped area, so λ equals the fraction of
pixels of the image itself exactly. DALI expresses it with ``fn.multi_paste`` (own image, then
the partner's box).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import ModuleType
from typing import Any, ClassVar, Literal

import numpy as np

from dali_gridaug._validate import check_choice, check_range, check_type
from dali_gridaug.augment.base import (
    Backend,
    MixAugment,
    Params,
    ParamSpec,
    SampleContext,
    paste_args,
    paste_specs,
)
from dali_gridaug.geometry import (
    box_area,
    cut_sides,
    identity_partner,
    random_partner,
    sample_box,
)
from dali_gridaug.kernels import box_visible_mask, mix_by_mask


@dataclasses.dataclass(frozen=True)
class CutMix(MixAugment):
    """CutMix configuration.

    Args:
        alpha: Beta(α, α) concentration, > 0 (ImageNet 1.0).
        p: apply probability (per batch in ``"batch"`` mode, per sample in ``"elem"``).
        mode: ``"batch"``: one λ, one box, one coin for the batch (official code);
            ``"elem"``: per-sample λ, box and coin.
        correct_lam: recompute λ from the clipped box (official code; default True).
        derangement: partners form a permutation without fixed points (no self-mixing).
        backend: see :class:`~dali_gridaug.augment.base.Augment`.

    Note:
        Partners are one random permutation of the batch; samples not mixed have λ = 1 and
        themselves as partner. The targets are smoothed by the loader's ``label_smoothing``
        (the official code and torchvision have no smoothing of their own).
    """

    alpha: float = 1.0
    p: float = 1.0
    mode: Literal["batch", "elem"] = "batch"
    correct_lam: bool = True
    derangement: bool = False
    backend: Backend = "auto"

    name: ClassVar[str] = "cutmix"

    def __post_init__(self) -> None:
        check_range("alpha", self.alpha, 0, low_open=True)
        check_range("p", self.p, 0, 1)
        check_choice("mode", self.mode, ("batch", "elem"))
        check_type("correct_lam", self.correct_lam, bool)
        check_type("derangement", self.derangement, bool)
        super().__post_init__()

    def schema(self, height: int, width: int) -> tuple[ParamSpec, ...]:
        return (
            ParamSpec("lam", np.float32),
            ParamSpec("partner", np.int32),
            ParamSpec("box", np.int32, (4,)),
            *paste_specs(1),
        )

    def sample(self, rng: np.random.Generator, ctx: SampleContext) -> Params:
        b, height, width = ctx.batch_size, ctx.height, ctx.width
        n = 1 if self.mode == "batch" else b
        lam = rng.beta(self.alpha, self.alpha, size=n)
        box = sample_box(rng, *cut_sides(lam, height, width), height, width, "clip")
        applied = rng.random(n) < self.p
        box = np.broadcast_to(np.where(applied[:, None], box, 0), (b, 4))
        if self.correct_lam:
            lam = 1.0 - box_area(box) / (height * width)
        else:
            lam = np.broadcast_to(np.where(applied, lam, 1.0), (b,))
        partner = random_partner(rng, b, self.derangement)
        mixed = box_area(box) > 0
        partner = np.where(mixed, partner, identity_partner(b)).astype(np.int32)
        return {
            "lam": np.ascontiguousarray(lam, np.float32),
            "partner": partner,
            "box": np.ascontiguousarray(box, np.int32),
            **paste_args(partner, box[:, None, :], height, width, ctx.flip),
        }

    def unmixed(self, ctx: SampleContext) -> Params:
        return {**super().unmixed(ctx), "box": np.zeros((ctx.batch_size, 4), np.int32)}

    def apply_xp(self, xp: ModuleType, images: Any, params: Mapping[str, Any]) -> Any:
        _, h, w, _ = images.shape
        return mix_by_mask(xp, images, box_visible_mask(xp, h, w, params["box"]), params["partner"])
