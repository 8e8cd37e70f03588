"""Keep variants as a batched post-loader stage: KeepCutout, KeepCutMix, KeepGridMask, paste.

KeepAugment (Gong et al., 2021, https://arxiv.org/abs/2011.11778), in the form of SPEC
§"Keep variants": the saliency of the current model decides which region is cut (selective-cut:
Cutout, CutMix, and our GridMask extension) or pasted back from the clean image
(selective-paste, after an image-level augmentation such as AutoAugment/RandAugment).

The stage runs on the loader's batch, on its device, with torch ops only: one forward and one
backward for the saliency of the whole batch, integral images for the window scores, one
``torch.multinomial`` for the choice. Masks come from :mod:`dali_gridaug.kernels` (NumPy on
CPU, CuPy on CUDA, zero-copy). No host synchronisation is needed anywhere in the stage.

Example:
    >>> stage = KeepStage(model, "cutout", tau=0.6, length=16, generator=gen)
    >>> for batch in loader:
    ...     images, target = stage(batch)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from dali_gridaug._validate import check_choice, check_pair, check_range, check_type
from dali_gridaug.batch import Batch
from dali_gridaug.kernels import box_keep_mask, from_xp, grid_keep_mask, to_xp
from dali_gridaug.labels import mix_target
from dali_gridaug.saliency.maps import lowres_images, saliency_and_logits
from dali_gridaug.saliency.regions import (
    eligibility_weights,
    masked_choice,
    select_windows,
    upscale_boxes,
)

Method = Literal["cutout", "cutmix", "gridmask", "paste"]
SaliencyKind = Literal["full", "lowres", "early"]
METHODS: tuple[str, ...] = ("cutout", "cutmix", "gridmask", "paste")
SALIENCY_KINDS: tuple[str, ...] = ("full", "lowres", "early")


@dataclasses.dataclass(frozen=True)
class KeepGridMaskConfig:
    """GridMask parameters for KeepGridMask (GridMask paper notation, SPEC §GridMask).

    Attributes:
        r: kept-stripe fraction of the period, in ``(0, 1]``; the kept stripe is
            ``l = ceil(d·r)`` pixels wide and the dropped squares ``d − l``.
        d: ``(d_min, d_max)`` period range in pixels, ``d ~ U{d_min … d_max − 1}``; ``None``
            means ``(max(2, H // 3), H)`` for images of height H.
        rotate: angles are ``U{0 … rotate − 1}`` degrees; ≥ 1 (1 = no rotation).
        mode: 1 = GridMask (drop squares), 0 = reversed GridMask (keep only the squares).
    """

    r: float = 0.6
    d: tuple[int, int] | None = None
    rotate: int = 360
    mode: int = 1

    def __post_init__(self) -> None:
        check_range("gridmask.r", self.r, 0, 1, low_open=True)
        if self.d is not None:
            d_min, d_max = check_pair("gridmask.d", self.d, 1)
            check_type("gridmask.d[0]", d_min, int)
            check_type("gridmask.d[1]", d_max, int)
            object.__setattr__(self, "d", (d_min, d_max))
        check_type("gridmask.rotate", self.rotate, int)
        check_range("gridmask.rotate", self.rotate, 1)
        check_type("gridmask.mode", self.mode, int)
        check_choice("gridmask.mode", self.mode, (0, 1))

    def period_range(self, height: int) -> tuple[int, int]:
        """``(d_min, d_max)`` for images of height ``height`` (resolves the default)."""
        if self.d is not None:
            return self.d
        if height < 3:
            raise ValueError(
                f"the default `gridmask.d` = (max(2, H // 3), H) needs H >= 3, got H = {height}; "
                "pass `gridmask.d` explicitly"
            )
        return max(2, height // 3), height


def _as_gridmask_config(value: Any) -> KeepGridMaskConfig:
    if value is None:
        return KeepGridMaskConfig()
    if isinstance(value, KeepGridMaskConfig):
        return value
    names = ("r", "d", "rotate", "mode")
    if not all(hasattr(value, name) for name in names):
        raise TypeError(
            "`gridmask` must be None or an object with attributes r, d, rotate, mode "
            f"(e.g. KeepGridMaskConfig), got {type(value).__name__}"
        )
    return KeepGridMaskConfig(**{name: getattr(value, name) for name in names})


@dataclasses.dataclass(frozen=True)
class GridDraws:
    """The ``k`` GridMask candidates of each sample, ``(B, k)`` float32 each.

    Attributes:
        tile: period ``d`` in pixels.
        ratio: dropped fraction of the period per axis, ``(d − l) / d``.
        angle: rotation in radians.
        shift_x: grid offset in pixels along the rotated x axis, ``U[0, d)``.
        shift_y: grid offset in pixels along the rotated y axis, ``U[0, d)``.
    """

    tile: torch.Tensor
    ratio: torch.Tensor
    angle: torch.Tensor
    shift_x: torch.Tensor
    shift_y: torch.Tensor


@dataclasses.dataclass(frozen=True)
class KeepParams:
    """Everything one Keep step decided; :meth:`KeepStage.apply` is a pure function of it.

    Attributes:
        keep: ``(B, H, W)`` float32 0/1 mask, 1 = pixel of ``batch.images`` kept; 0 = filled
            with 0 (cutout, gridmask), the partner's pixel (cutmix) or the clean pixel (paste).
        boxes: ``(B, 4)`` int64 ``(y0, x0, y1, x1)``, half-open: the region cut (cutout),
            pasted from the partner (cutmix) or pasted back from ``clean`` (paste);
            ``(0, 0, H, W)`` for gridmask, whose dropped region is a grid, not a box.
        partner: ``(B,)`` int64 batch position of the image mixed in (own position unless
            cutmix).
        lam: ``(B,)`` float32 fraction of pixels from the sample's own image (cutmix:
            ``1 − box area / (H·W)`` of the box actually pasted; other methods 1.0).
        num_classes: K, the logit count of the model.
        saliency: ``(B, h, w)`` float32 map the choice was made on (``h, w = H // 2, W // 2``
            for low-resolution saliency).
        grid: the gridmask candidates, else ``None``.
        draw_scores: ``(B, k)`` float32 saliency dropped by each gridmask candidate
            ``Σ g·(1 − mask)``, else ``None``.
        draw: ``(B,)`` int64 index of the gridmask candidate kept, else ``None``.
    """

    keep: torch.Tensor
    boxes: torch.Tensor
    partner: torch.Tensor
    lam: torch.Tensor
    num_classes: int
    saliency: torch.Tensor
    grid: GridDraws | None = None
    draw_scores: torch.Tensor | None = None
    draw: torch.Tensor | None = None


class KeepStage:
    """Saliency-guided Keep augmentation of a loader :class:`~dali_gridaug.batch.Batch`.

    ``stage(batch)`` returns ``batch.replace(images, target, lam, boxes, partner)`` with a soft
    ``(B, K)`` float32 ``target = lam·onehot(y) + (1 − lam)·onehot(y[partner])``. The stage
    expects an un-mixed batch: ``target`` is recomputed from ``batch.labels``. Cut pixels are
    set to 0, the dataset mean colour in normalized space (SPEC).

    Methods (SPEC §"Keep variants" 3–4):
        - ``"cutout"``: an ``length×length`` cut-eligible window (fully inside) is zeroed.
        - ``"cutmix"``: per sample ``λ ~ Beta(α, α)``, box side ``int(S·sqrt(1 − λ))`` per axis
          (S = H, W), placed at a cut-eligible location of that size on the sample's own
          image; the partner (random permutation) patch is pasted there; λ from the area.
        - ``"gridmask"``: ``draws`` GridMask masks per image; one is kept uniformly among
          those whose dropped saliency is cut-eligible (rank rule over the draws).
        - ``"paste"``: ``batch.images`` is the augmented view x' and ``batch.clean`` the clean
          view x (build the loader with ``keep_clean=True``); saliency on x; the output is x'
          except a paste-eligible ``length×length`` window, which equals x exactly.

    Saliency (all in eval mode, no parameter gradients): ``"full"``; ``"lowres"``: on a ×0.5
    bicubic copy with windows of ``length // 2`` (≥ 1) mapped back ×2 (gridmask scores use the
    low-resolution map upsampled by nearest neighbour); ``"early"``: the logit of the model's
    early head (``model.early_logits``, see :class:`EarlyHeadResNet`).

    Args:
        model: the classifier being trained, on the batch's device.
        method: ``"cutout"``, ``"cutmix"``, ``"gridmask"`` or ``"paste"``.
        tau: quantile in ``(0, 1)`` splitting cut- from paste-eligible regions (paper: 0.6).
        length: window side in pixels for cutout and paste (CIFAR-10: 16); ≤ min(H, W),
            checked per batch. Unused by cutmix and gridmask.
        saliency: ``"full"``, ``"lowres"`` or ``"early"``.
        alpha: Beta(α, α) concentration for cutmix, > 0.
        gridmask: GridMask parameters (:class:`KeepGridMaskConfig` or any object with
            ``r, d, rotate, mode``); ``None`` = ``r=0.6, d=(max(2, H//3), H), rotate=360,
            mode=1``. Used by gridmask only.
        draws: number ``k ≥ 1`` of GridMask candidates per image.
        generator: torch generator on the batch's device; ``None`` creates one per device
            with a nondeterministic seed (pass one for reproducible runs).

    Raises:
        TypeError: ``model`` is not a module, ``generator`` not a generator, ``gridmask`` has
            the wrong attributes, or an argument has the wrong type.
        ValueError: an argument is out of range (the message names it, the valid range and
            the value received).

    Note:
        Every choice is per sample. The random draws happen in this order on ``generator``:
        cutmix λ then partner permutation; gridmask tile, angle, shifts; then the window or
        draw choice.
    """

    def __init__(
        self,
        model: nn.Module,
        method: Method,
        *,
        tau: float = 0.6,
        length: int = 16,
        saliency: SaliencyKind = "full",
        alpha: float = 1.0,
        gridmask: KeepGridMaskConfig | Any | None = None,
        draws: int = 8,
        generator: torch.Generator | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}")
        check_choice("method", method, METHODS)
        check_range("tau", tau, 0, 1, low_open=True, high_open=True)
        check_type("length", length, int)
        check_range("length", length, 1)
        check_choice("saliency", saliency, SALIENCY_KINDS)
        if saliency == "early" and not callable(getattr(model, "early_logits", None)):
            raise TypeError(
                "`saliency`='early' needs a model with an `early_logits(x)` method (wrap a "
                f"torchvision ResNet in EarlyHeadResNet), got {type(model).__name__}"
            )
        check_range("alpha", alpha, 0, low_open=True)
        check_type("draws", draws, int)
        check_range("draws", draws, 1)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(
                f"`generator` must be a torch.Generator or None, got {type(generator).__name__}"
            )
        self.model = model
        self.method: str = method
        self.tau = float(tau)
        self.length = int(length)
        self.saliency: str = saliency
        self.alpha = float(alpha)
        self.gridmask = _as_gridmask_config(gridmask)
        self.draws = int(draws)
        self.generator = generator
        self._default_generators: dict[str, torch.Generator] = {}

    def __repr__(self) -> str:
        return (
            f"KeepStage(method={self.method!r}, tau={self.tau}, length={self.length}, "
            f"saliency={self.saliency!r}, alpha={self.alpha}, gridmask={self.gridmask}, "
            f"draws={self.draws})"
        )

    def __call__(self, batch: Batch) -> Batch:
        """Sample the Keep parameters for ``batch`` and apply them."""
        return self.apply(batch, self.sample_params(batch))

    # -- sampling --------------------------------------------------------------------------

    def sample_params(self, batch: Batch) -> KeepParams:
        """Compute the saliency and draw every region for ``batch`` (no image is changed).

        Args:
            batch: loader batch; ``images`` ``(B, 3, H, W)``, ``labels`` ``(B,)`` int64, and
                ``clean`` ``(B, 3, H, W)`` for ``"paste"``.

        Returns:
            The :class:`KeepParams` of this step.
        """
        images = self._check_batch(batch)
        b, _, height, width = images.shape
        device = images.device
        gen = self._generator_for(device)
        source = batch.clean if self.method == "paste" else images
        g, num_classes = self._saliency_map(source, batch.labels)
        own = torch.arange(b, device=device)
        ones = torch.ones(b, dtype=torch.float32, device=device)
        if self.method in ("cutout", "paste"):
            size = torch.full((b,), self.length, dtype=torch.int64, device=device)
            which = "cut" if self.method == "cutout" else "paste"
            boxes = self._select(g, size, size, height, width, which, gen)
            return KeepParams(
                keep=self._box_keep(boxes, height, width),
                boxes=boxes,
                partner=own,
                lam=ones,
                num_classes=num_classes,
                saliency=g,
            )
        if self.method == "cutmix":
            lam = _sample_beta(self.alpha, b, gen, device)
            partner = torch.randperm(b, generator=gen, device=device)
            cut = torch.sqrt(1.0 - lam)
            hs = torch.floor(height * cut).to(torch.int64)
            ws = torch.floor(width * cut).to(torch.int64)
            boxes = self._select(g, hs, ws, height, width, "cut", gen)
            area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
            return KeepParams(
                keep=self._box_keep(boxes, height, width),
                boxes=boxes,
                partner=partner,
                lam=(1.0 - area.to(torch.float64) / (height * width)).to(torch.float32),
                num_classes=num_classes,
                saliency=g,
            )
        return self._sample_gridmask(g, num_classes, height, width, gen)

    def _sample_gridmask(
        self, g: torch.Tensor, num_classes: int, height: int, width: int, gen: torch.Generator
    ) -> KeepParams:
        b, k, device = g.shape[0], self.draws, g.device
        grid = _sample_grid_draws(self.gridmask, b, k, height, gen, device)
        xp = None
        arrays = []
        for field in (grid.tile, grid.ratio, grid.angle, grid.shift_x, grid.shift_y):
            xp, array = to_xp(field.reshape(-1).contiguous())
            arrays.append(array)
        masks = from_xp(grid_keep_mask(xp, height, width, *arrays, mode=self.gridmask.mode))
        masks = masks.to(device).reshape(b, k, height, width)
        g_full = g
        if g.shape[-2:] != (height, width):
            g_full = F.interpolate(g[:, None], size=(height, width), mode="nearest")[:, 0]
        dropped = torch.einsum("bhw,bkhw->bk", g_full, 1.0 - masks)
        draw = masked_choice(eligibility_weights(dropped, self.tau, "cut"), gen)
        keep = masks[torch.arange(b, device=device), draw]
        boxes = torch.zeros(b, 4, dtype=torch.int64, device=device)  # no host→device copy
        boxes[:, 2], boxes[:, 3] = height, width
        return KeepParams(
            keep=keep,
            boxes=boxes,
            partner=torch.arange(b, device=device),
            lam=torch.ones(b, dtype=torch.float32, device=device),
            num_classes=num_classes,
            saliency=g,
            grid=grid,
            draw_scores=dropped,
            draw=draw,
        )

    def _saliency_map(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
        if self.saliency == "lowres":
            images = lowres_images(images)
        forward = self.model.early_logits if self.saliency == "early" else None
        g, logits = saliency_and_logits(self.model, images, labels, forward=forward)
        return g, int(logits.shape[1])

    def _select(
        self,
        g: torch.Tensor,
        heights: torch.Tensor,
        widths: torch.Tensor,
        height: int,
        width: int,
        which: Literal["cut", "paste"],
        gen: torch.Generator,
    ) -> torch.Tensor:
        if g.shape[-2:] == (height, width):
            return select_windows(g, heights, widths, tau=self.tau, which=which, generator=gen)
        # Low resolution: windows of half the side (at least 1 pixel unless the box is empty).
        low_h = torch.where(heights > 0, (heights // 2).clamp_min(1), heights)
        low_w = torch.where(widths > 0, (widths // 2).clamp_min(1), widths)
        low = select_windows(g, low_h, low_w, tau=self.tau, which=which, generator=gen)
        return upscale_boxes(low, heights, widths, height, width)

    @staticmethod
    def _box_keep(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
        xp, array = to_xp(boxes)
        return from_xp(box_keep_mask(xp, height, width, array)).to(boxes.device)

    # -- applying --------------------------------------------------------------------------

    def apply(self, batch: Batch, params: KeepParams) -> Batch:
        """Apply ``params`` to ``batch`` (pure: the same params give the same batch).

        Args:
            batch: the batch the params were sampled for.
            params: from :meth:`sample_params`.

        Returns:
            ``batch.replace(images, target, lam, boxes, partner)``; ``images`` keeps the dtype
            and device of ``batch.images``; ``target`` is ``(B, K)`` float32.
        """
        images = batch.images
        keep = params.keep.to(device=images.device, dtype=torch.bool)[:, None]
        if self.method == "cutmix":
            other = images[params.partner]
        elif self.method == "paste":
            if batch.clean is None:
                raise ValueError(_NO_CLEAN)
            other = batch.clean.to(images.dtype)
        else:
            other = images.new_zeros(())
        out = torch.where(keep, images, other)
        target = mix_target(batch.labels, params.partner, params.lam, params.num_classes)
        return batch.replace(
            images=out,
            target=target,
            lam=params.lam,
            boxes=params.boxes,
            partner=params.partner,
        )

    # -- checks ----------------------------------------------------------------------------

    def _check_batch(self, batch: Batch) -> torch.Tensor:
        images = batch.images
        if images.ndim != 4:
            raise ValueError(
                f"`batch.images` must be (B, C, H, W), got shape {tuple(images.shape)}"
            )
        height, width = images.shape[-2:]
        if self.method in ("cutout", "paste") and self.length > min(height, width):
            raise ValueError(
                f"`length` must be <= min(H, W) = {min(height, width)} of the batch images, "
                f"got {self.length}"
            )
        if self.saliency == "lowres" and min(height, width) < 2:
            raise ValueError(
                f"`saliency`='lowres' needs images of at least 2×2 pixels, got {height}×{width}"
            )
        if self.method == "paste":
            if batch.clean is None:
                raise ValueError(_NO_CLEAN)
            if batch.clean.shape != images.shape:
                raise ValueError(
                    f"`batch.clean` must have the shape of `batch.images` {tuple(images.shape)}, "
                    f"got {tuple(batch.clean.shape)}"
                )
        if self.method == "gridmask":
            self.gridmask.period_range(height)
        return images

    def _generator_for(self, device: torch.device) -> torch.Generator:
        if self.generator is not None:
            if self.generator.device.type != device.type:
                raise ValueError(
                    f"`generator` must be on the batch's device type {device.type!r}, got a "
                    f"generator on {str(self.generator.device)!r}; create it with "
                    "torch.Generator(device=...)"
                )
            return self.generator
        key = str(device)
        if key not in self._default_generators:
            gen = torch.Generator(device=device)
            gen.seed()
            self._default_generators[key] = gen
        return self._default_generators[key]


_NO_CLEAN = (
    "method='paste' needs the clean view in `batch.clean`, got None; build the loader with "
    "`keep_clean=True`"
)


def _sample_beta(
    alpha: float, n: int, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """``(n,)`` float64 draws of Beta(α, α) as ``X / (X + Y)`` with X, Y ~ Gamma(α).

    ``torch.distributions.Beta`` takes no generator, hence the (long-stable, private)
    ``torch._standard_gamma``, which is what it uses underneath.
    """
    concentration = torch.full((2, n), alpha, dtype=torch.float64, device=device)
    gamma = torch._standard_gamma(concentration, generator=generator)
    total = gamma.sum(dim=0)
    return torch.where(total > 0, gamma[0] / total.clamp_min(1e-300), 0.5)


def _sample_grid_draws(
    cfg: KeepGridMaskConfig,
    batch: int,
    draws: int,
    height: int,
    generator: torch.Generator,
    device: torch.device,
) -> GridDraws:
    """GridMask parameters as the GridMask algorithm draws them, for ``(batch, draws)``."""
    d_min, d_max = cfg.period_range(height)
    shape = (batch, draws)
    tile = torch.randint(d_min, d_max, shape, generator=generator, device=device)
    tile = tile.to(torch.float64)
    kept = torch.ceil(tile * cfg.r)
    degrees = torch.randint(0, cfg.rotate, shape, generator=generator, device=device)
    shift_x = torch.rand(shape, generator=generator, device=device, dtype=torch.float64) * tile
    shift_y = torch.rand(shape, generator=generator, device=device, dtype=torch.float64) * tile
    return GridDraws(
        tile=tile.float(),
        ratio=((tile - kept) / tile).float(),
        angle=(degrees.to(torch.float64) * (math.pi / 180.0)).float(),
        shift_x=shift_x.float(),
        shift_y=shift_y.float(),
    )
