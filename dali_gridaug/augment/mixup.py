"""Mixup (Zhang et al., 2018, arXiv:1710.09412) and timm's Mixup/CutMix switch.

Semantics of timm's ``timm/data/mixup.py`` (``Mixup``, ``rand_bbox``, ``rand_bbox_minmax``,
``cutmix_bbox_and_lam``, ``mixup_target``):

- With probability ``prob`` a unit mixes at all (else λ = 1). It uses CutMix with probability
  ``switch_prob`` when both alphas are > 0, else the one mix whose alpha is > 0; λ ~ Beta(α, α)
  of the chosen mix.
- Units: ``"batch"`` one draw for the batch; ``"pair"`` one draw per pair ``(i, B−1−i)``, both
  members mixing with each other (same λ, same box); ``"elem"`` one draw per sample.
- The partner of sample ``i`` is ``B−1−i`` (the flipped batch). The reader reshuffles the
  files every epoch, so this is a uniformly random pairing of the files.
- Mixup: ``x̃ = λ·x + (1−λ)·x[partner]``. CutMix: timm's box rule,
  :func:`~dali_gridaug.geometry.sample_timm_box` (box side ``int(S·sqrt(1−λ))`` per axis,
  centre uniform over pixels, box ``[c − s//2, c + (s+1)//2)`` clipped; the clovaai rule of
  :class:`~dali_gridaug.augment.cutmix.CutMix` ends at ``c + s//2``), or with
  ``cutmix_minmax = (a, b)`` side ``U{int(S·a) … int(S·b)−1}`` placed fully inside; λ is
  recomputed from the box area when ``correct_lam`` or ``cutmix_minmax``.
- Targets: ``λ·onehot_ε(y) + (1−λ)·onehot_ε(y[partner])`` with timm's smoothing (off ε/K, on
  1 − ε + ε/K), computed by the labels stage from the emitted ``lam`` and ``partner``.

The emitted λ is exact: for CutMix it is the fraction of the sample's own pixels, for Mixup it
is the blend weight the graph uses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import ModuleType
from typing import Any, ClassVar, Literal

import numpy as np

from dali_gridaug._validate import check_choice, check_pair, check_range, check_type
from dali_gridaug.augment.base import (
    Backend,
    MixAugment,
    Params,
    ParamSpec,
    SampleContext,
    paste_args,
    paste_specs,
)
from dali_gridaug.geometry import box_area, identity_partner, sample_timm_box
from dali_gridaug.kernels import box_visible_mask, mix_by_mask

Mode = Literal["batch", "pair", "elem"]


def sample_mix(
    rng: np.random.Generator,
    batch_size: int,
    height: int,
    width: int,
    *,
    mixup_alpha: float,
    cutmix_alpha: float,
    cutmix_minmax: tuple[float, float] | None = None,
    prob: float = 1.0,
    switch_prob: float = 0.5,
    mode: Mode = "batch",
    correct_lam: bool = True,
) -> dict[str, np.ndarray]:
    """Draw one batch of timm Mixup/CutMix parameters (pure NumPy, vectorized).

    Args:
        rng: the batch's generator.
        batch_size: B (even in ``"pair"`` mode).
        height: image height H in pixels.
        width: image width W in pixels.
        mixup_alpha, cutmix_alpha, cutmix_minmax, prob, switch_prob, mode, correct_lam: as
            :class:`MixupCutMix`.

    Returns:
        ``lam (B,)`` float32: fraction of the own image (CutMix) or blend weight (Mixup);
        ``partner (B,)`` int32: ``B−1−i`` where mixed, else ``i``;
        ``box (B, 4)`` int32 ``(y0, x0, y1, x1)`` taken from the partner (empty unless CutMix);
        ``use_cutmix (B,)`` uint8: 1 where the CutMix branch was drawn and mixes;
        ``weight (B,)`` float32: weight of the (pasted) own image in the final blend, λ for
        Mixup and 1 for CutMix and unmixed samples.
    """
    b = batch_size
    n = {"batch": 1, "pair": b // 2, "elem": b}[mode]
    if cutmix_minmax is not None:
        cutmix_alpha = 1.0  # timm forces it, so λ and the switch are drawn as usual
    if mixup_alpha > 0 and cutmix_alpha > 0:
        use_cutmix = rng.random(n) < switch_prob
    else:
        use_cutmix = np.full(n, cutmix_alpha > 0)
    alpha = np.where(use_cutmix, cutmix_alpha, mixup_alpha)
    lam = rng.beta(alpha, alpha).astype(np.float64)
    lam = np.where(rng.random(n) < prob, lam, 1.0)
    box = sample_timm_box(rng, lam, height, width, cutmix_minmax)
    use_cutmix &= lam < 1.0
    box = np.where(use_cutmix[:, None], box, 0)
    if correct_lam or cutmix_minmax is not None:
        lam = np.where(use_cutmix, 1.0 - box_area(box) / (height * width), lam)
    unit = {"batch": np.zeros(b, np.int64), "pair": None, "elem": np.arange(b)}[mode]
    if unit is None:
        unit = np.minimum(np.arange(b), b - 1 - np.arange(b))
    lam = lam.astype(np.float32)[unit]
    use_cutmix, box = use_cutmix[unit], box[unit]
    flipped = (b - 1 - identity_partner(b)).astype(np.int32)
    partner = np.where(lam < 1, flipped, identity_partner(b)).astype(np.int32)
    return {
        "lam": lam,
        "partner": partner,
        "box": np.ascontiguousarray(box, np.int32),
        "use_cutmix": use_cutmix.astype(np.uint8),
        "weight": np.where(use_cutmix, np.float32(1), lam).astype(np.float32),
    }


@dataclasses.dataclass(frozen=True)
class _Mixing(MixAugment):
    """Shared graph and host logic of :class:`MixupCutMix` and :class:`Mixup` (no fields).

    In the graph the CutMix box is pasted on uint8 pixels with the other pastes, and the Mixup
    blend ``w·x + (1 − w)·x[partner]`` runs on the normalized CHW output (after any masks).
    """

    #: emitted parameters of :func:`sample_mix`, besides ``lam`` and ``partner``.
    extra_keys: ClassVar[tuple[str, ...]] = ()

    def _mix_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`sample_mix` (all but the geometry)."""
        raise NotImplementedError

    def pastes(self) -> bool:
        kw = self._mix_kwargs()
        return kw["cutmix_alpha"] > 0 or kw["cutmix_minmax"] is not None

    def target_smoothing(self) -> float:
        return self.label_smoothing  # type: ignore[attr-defined]

    def check_geometry(self, height: int, width: int, batch_size: int) -> None:
        super().check_geometry(height, width, batch_size)
        kw = self._mix_kwargs()
        if kw["mode"] == "pair" and batch_size % 2:
            raise ValueError(f"`mode`='pair' needs an even `batch_size`, got {batch_size}")
        minmax = kw["cutmix_minmax"]
        if minmax is not None and any(
            int(s * minmax[0]) >= int(s * minmax[1]) for s in (height, width)
        ):
            raise ValueError(
                f"`cutmix_minmax`={minmax!r} leaves no integer box side on {height}×{width} images"
            )

    def schema(self, height: int, width: int) -> tuple[ParamSpec, ...]:
        extra = {
            "box": ParamSpec("box", np.int32, (4,)),
            "use_cutmix": ParamSpec("use_cutmix", np.uint8),
        }
        return (
            ParamSpec("lam", np.float32),
            ParamSpec("partner", np.int32),
            *(extra[k] for k in self.extra_keys),
            ParamSpec("weight", np.float32, emitted=False),
            *(paste_specs(1) if self.pastes() else ()),
        )

    def sample(self, rng: np.random.Generator, ctx: SampleContext) -> Params:
        h, w = ctx.height, ctx.width
        p = sample_mix(rng, ctx.batch_size, h, w, **self._mix_kwargs())
        out: Params = {k: p[k] for k in ("lam", "partner", *self.extra_keys, "weight")}
        if self.pastes():
            out.update(paste_args(p["partner"], p["box"][:, None, :], h, w, ctx.flip))
        return out

    def unmixed(self, ctx: SampleContext) -> Params:
        b = ctx.batch_size
        none = {"box": np.zeros((b, 4), np.int32), "use_cutmix": np.zeros(b, np.uint8)}
        out = super().unmixed(ctx)
        out.update({k: none[k] for k in self.extra_keys})
        # the blend keeps the own image whole: w·x + 0·x[partner] = x
        return {**out, "weight": np.ones(b, np.float32)}

    def blend_plain(self) -> bool:
        # per-sample draws: a Mixup sample's partner may itself have been pasted
        return self.pastes() and self._mix_kwargs()["mode"] == "elem"

    def blend_dali(self, images: Any, params: Mapping[str, Any], plain: Any) -> Any:
        """``w·images + (1 − w)·plain[partner]`` (``fn.permute_batch``), ``w`` = ``weight``
        per sample; where ``w`` = 1 the result is ``images`` exactly.
        """
        from nvidia.dali import fn

        other = fn.permute_batch(plain, indices=params["partner"])
        weight = params["weight"]
        if images.device == "gpu":
            weight = weight.gpu()
        return images * weight + other * (1.0 - weight)

    def apply_xp(self, xp: ModuleType, images: Any, params: Mapping[str, Any]) -> Any:
        _, h, w, _ = images.shape
        partner = params["partner"].reshape(-1)
        own = images
        if "box" in params:
            own = mix_by_mask(xp, images, box_visible_mask(xp, h, w, params["box"]), partner)
        weight = params["weight"].reshape(-1, 1, 1, 1).astype(images.dtype)
        return (weight * own + (1 - weight) * images[xp.asarray(partner)]).astype(images.dtype)


@dataclasses.dataclass(frozen=True)
class MixupCutMix(_Mixing):
    """timm's ``Mixup``: Mixup or CutMix with the partner ``B−1−i``, per batch, pair or sample.

    Args:
        mixup_alpha: Mixup Beta(α, α) concentration; 0 disables Mixup.
        cutmix_alpha: CutMix Beta(α, α) concentration; 0 disables CutMix.
        cutmix_minmax: ``(min, max)`` box side range as fractions of the image side, with
            ``0 ≤ min < max ≤ 1``; enables CutMix with a fully-inside box (``cutmix_alpha``
            is then 1, as timm).
        prob: probability that a unit (batch, pair or sample) mixes at all.
        switch_prob: probability of CutMix instead of Mixup when both are enabled.
        mode: ``"batch"``, ``"pair"`` (needs an even batch) or ``"elem"``.
        correct_lam: recompute λ from the clipped box area (CutMix).
        label_smoothing: timm-style smoothing ε of the mixed targets (timm default 0.1).
        backend: see :class:`~dali_gridaug.augment.base.Augment`.
    """

    mixup_alpha: float = 0.8
    cutmix_alpha: float = 1.0
    cutmix_minmax: tuple[float, float] | None = None
    prob: float = 1.0
    switch_prob: float = 0.5
    mode: Mode = "batch"
    correct_lam: bool = True
    label_smoothing: float = 0.1
    backend: Backend = "auto"

    name: ClassVar[str] = "mixup_cutmix"
    extra_keys: ClassVar[tuple[str, ...]] = ("box", "use_cutmix")

    def __post_init__(self) -> None:
        check_range("mixup_alpha", self.mixup_alpha, 0)
        check_range("cutmix_alpha", self.cutmix_alpha, 0)
        if self.cutmix_minmax is not None:
            check_pair("cutmix_minmax", self.cutmix_minmax, 0, 1)
            object.__setattr__(self, "cutmix_minmax", tuple(self.cutmix_minmax))
        elif self.mixup_alpha == 0 and self.cutmix_alpha == 0:
            raise ValueError(
                "`mixup_alpha` or `cutmix_alpha` must be > 0 (or `cutmix_minmax` set), "
                "got mixup_alpha=0 and cutmix_alpha=0"
            )
        check_range("prob", self.prob, 0, 1)
        check_range("switch_prob", self.switch_prob, 0, 1)
        check_choice("mode", self.mode, ("batch", "pair", "elem"))
        check_type("correct_lam", self.correct_lam, bool)
        check_range("label_smoothing", self.label_smoothing, 0, 1, high_open=True)
        super().__post_init__()

    def _mix_kwargs(self) -> dict[str, Any]:
        return dict(
            mixup_alpha=self.mixup_alpha,
            cutmix_alpha=self.cutmix_alpha,
            cutmix_minmax=self.cutmix_minmax,
            prob=self.prob,
            switch_prob=self.switch_prob,
            mode=self.mode,
            correct_lam=self.correct_lam,
        )


@dataclasses.dataclass(frozen=True)
class Mixup(_Mixing):
    """Mixup alone: λ ~ Beta(α, α), ``x̃ = λ·x + (1−λ)·x[B−1−i]``, ``ỹ`` likewise.

    Args:
        alpha: Beta(α, α) concentration, > 0 (Zhang et al.: 0.2 on ImageNet, 1.0 on CIFAR).
        p: probability that a unit mixes.
        mode: ``"batch"`` (one λ per batch, as the paper's code), ``"pair"`` or ``"elem"``.
        label_smoothing: timm-style smoothing ε of the mixed targets.
        backend: see :class:`~dali_gridaug.augment.base.Augment`.
    """

    alpha: float = 1.0
    p: float = 1.0
    mode: Mode = "batch"
    label_smoothing: float = 0.0
    backend: Backend = "auto"

    name: ClassVar[str] = "mixup"

    def __post_init__(self) -> None:
        check_range("alpha", self.alpha, 0, low_open=True)
        check_range("p", self.p, 0, 1)
        check_choice("mode", self.mode, ("batch", "pair", "elem"))
        check_range("label_smoothing", self.label_smoothing, 0, 1, high_open=True)
        super().__post_init__()

    def _mix_kwargs(self) -> dict[str, Any]:
        # no CutMix: sample_mix never reads switch_prob or correct_lam
        return dict(
            mixup_alpha=self.alpha,
            cutmix_alpha=0.0,
            cutmix_minmax=None,
            prob=self.p,
            mode=self.mode,
        )
