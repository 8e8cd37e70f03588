"""Keep variants as a batched post-loader stage: KeepCutout, KeepCutMix, KeepGridMask, paste.

KeepAugment (Gong et al., 2021, https://arxiv.org/abs/2011.11778): the saliency of the current
model decides which region is cut (selective-cut: Cutout, CutMix, and our GridMask extension)
or pasted back from the clean image (selective-paste, after an image-level augmentation such as
AutoAugment/RandAugment).

The stage runs on the loader's batch, on its device, with torch ops only: one forward and one
backward for the saliency of the whole batch, integral images for the box scores, one
inverse-CDF draw for the choice. Masks come from :mod:`dali_gridaug.kernels` (NumPy on
CPU, CuPy on CUDA, zero-copy). No host synchronisation is needed anywhere in the stage: every
shape depends only on the batch shape and the configuration, never on tensor values. Every
random draw is keyed (:mod:`dali_gridaug.saliency.keyed`) by ``(seed, batch.epoch,
batch.position)``, so a file gets the same Keep draws at any world size.

Example:
    >>> stage = KeepStage(model, "cutout", tau=0.6, length=16, box="clip", seed=run_seed)
    >>> for batch in loader:
    ...     batch = stage(batch)
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from torch import nn

from dali_gridaug._validate import check_choice, check_range, check_type
from dali_gridaug.augment import GridMask
from dali_gridaug.batch import Batch
from dali_gridaug.geometry import box_area
from dali_gridaug.kernels import box_visible_mask
from dali_gridaug.labels import mix_target
from dali_gridaug.saliency import keyed
from dali_gridaug.saliency.boxes import BOX_RULES, BoxRule, select_boxes
from dali_gridaug.saliency.grid import (
    MAX_MASK_ELEMENTS,
    GridDraws,
    choose_grid_draw,
    default_gridmask,
    sample_grid_draws,
)
from dali_gridaug.saliency.maps import lowres_images, saliency_and_logits
from dali_gridaug.saliency.torch_geometry import cut_sides

Method = Literal["cutout", "cutmix", "gridmask", "paste"]
SaliencyKind = Literal["full", "lowres", "early"]
METHODS: tuple[str, ...] = ("cutout", "cutmix", "gridmask", "paste")
SALIENCY_KINDS: tuple[str, ...] = ("full", "lowres", "early")


@dataclasses.dataclass(frozen=True)
class KeepParams:
    """Everything one Keep step decided; :meth:`KeepStage.apply` is a pure function of it.

    Attributes:
        keep: ``(B, H, W)`` float32 0/1 mask, 1 = pixel of ``batch.images`` kept; 0 = filled
            with 0 (cutout, gridmask), the partner's pixel (cutmix) or the clean pixel (paste).
        boxes: ``(B, 4)`` int64 ``(y0, x0, y1, x1)``, half-open: the region cut (cutout),
            pasted from the partner (cutmix) or pasted back from ``clean`` (paste), fully
            inside or clipped (``box="clip"``, possibly empty); ``(0, 0, H, W)`` for gridmask,
            whose dropped region is a grid, not a box.
        partner: ``(B,)`` int64 batch position of the image mixed in (own position unless
            cutmix).
        lam: ``(B,)`` float32 fraction of pixels from the sample's own image (cutmix:
            ``1 − box area / (H·W)`` of the box actually pasted; other methods 1.0).
        num_classes: K, the logit count of the model.
        saliency: ``(B, h, w)`` float32 map the choice was made on (``h, w = H // 2, W // 2``
            for low-resolution saliency).
        grid: the gridmask candidates, else ``None``.
        draw_scores: ``(B, k)`` float32 saliency dropped by each gridmask candidate
            ``Σ g·(1 − mask)`` (summed exactly on ``g`` quantized to ``2^-24`` of each image's
            maximum), else ``None``.
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
    set to 0, the dataset mean colour in normalized space.

    Methods (KeepAugment §3, selective-cut and selective-paste):
        - ``"cutout"``: a cut-eligible ``length×length`` box is zeroed.
        - ``"cutmix"``: per sample ``λ ~ Beta(α, α)``, box side ``s = int(S·sqrt(1 − λ))`` per
          axis (S = H, W), placed at a cut-eligible location on the sample's own image; the
          partner (random permutation) patch is pasted there; λ from the area pasted.
        - ``"gridmask"``: ``draws`` GridMask masks per image; one is kept uniformly among
          those whose dropped saliency is cut-eligible (rank rule over the draws).
        - ``"paste"``: ``batch.images`` is the augmented view x' and ``batch.clean`` the clean
          view x (build the loader with ``keep_clean=True``); saliency on x; the output is x'
          except a paste-eligible ``length×length`` window fully inside, which equals x exactly.

    Cut boxes (cutout, cutmix) follow ``box``:
        - ``"inside"``: the candidates are all windows of side ``s`` fully inside the image.
        - ``"clip"``: the Cutout/CutMix baselines' rule: the candidates are the boxes
          ``[c − s//2, c + s//2)`` per axis centred on each of the H·W pixels and clipped to
          the image; the score of a candidate is the saliency over its clipped box and λ comes
          from the clipped area. With all-zero saliency this is exactly the baselines' box
          distribution; otherwise clipped border boxes hold less saliency and are cut a bit
          more often, so the mean area is a little below the baselines' (KeepCutMix, α = 1:
          about 0.25 of the image against CutMix's 0.30, where fully-inside boxes cut 0.49).

    Saliency (all in eval mode, no parameter gradients): ``"full"``; ``"lowres"``: on a ×0.5
    bicubic copy with boxes of half the side (≥ 1) and positions mapped back ×2 plus a random
    offset, so that every full-resolution position is reachable (see
    :func:`~dali_gridaug.saliency.boxes.upscale_positions`); gridmask scores use the
    low-resolution map upsampled by nearest neighbour. ``"early"``: the logit of the model's
    early head (``model.early_logits(x)``, e.g.
    :class:`~dali_gridaug.models.heads.EarlyHeadResNet`).

    Args:
        model: the classifier being trained, on the batch's device.
        method: ``"cutout"``, ``"cutmix"``, ``"gridmask"`` or ``"paste"``.
        tau: quantile in ``(0, 1)`` splitting cut- from paste-eligible regions (paper: 0.6).
        length: box side in pixels for cutout and paste (CIFAR-10: 16); ≤ min(H, W),
            checked per batch. Unused by cutmix and gridmask.
        saliency: ``"full"``, ``"lowres"`` or ``"early"``.
        alpha: Beta(α, α) concentration for cutmix, > 0.
        box: ``"inside"`` or ``"clip"``, the box rule of cutout and cutmix (see above).
        gridmask: the GridMask augmentation's own config
            (:class:`~dali_gridaug.augment.GridMask`), of which the stage uses ``r``, ``d``,
            ``rotate`` and ``mode`` (every image gets a mask, from epoch 0: ``p``,
            ``ramp_epochs``, ``square_p`` and ``backend`` are the in-graph augmentation's);
            ``None`` = ``GridMask(r=0.6, d=(max(2, H // 3), H), rotate=360, mode=1)`` for
            images of height H (:func:`~dali_gridaug.saliency.grid.default_gridmask`: the
            period range scales with the image). Used by gridmask only.
        draws: number ``k ≥ 1`` of GridMask candidates per image.
        seed: the run seed, an int in ``[0, 2^63 − 1]``; with ``batch.epoch`` and
            ``batch.position`` it keys every draw (see the Note).
        max_mask_elements: gridmask builds its ``B·k`` candidate masks in chunks of samples
            holding at most this many mask values (at least one sample); the result does not
            depend on it. ≥ 1.

    Raises:
        TypeError: ``model`` is not a module, ``gridmask`` is not a ``GridMask``, or an
            argument has the wrong type.
        ValueError: an argument is out of range (the message names it, the valid range and
            the value received).

    Note:
        No generator state: every draw is a pure function of ``(seed, batch.epoch, position,
        stream, j)`` (:mod:`dali_gridaug.saliency.keyed`); ``position`` is the sample's place
        in the epoch's global order (``batch.position``; ``arange(B)`` when it is empty, in a
        hand-built batch), ``stream`` names the quantity, ``j`` counts its values. Per
        sample: the box choice (stream ``BOX``), low-resolution offsets (``OFFSET_Y``,
        ``OFFSET_X``), gridmask candidate ``j``'s period, degrees and shifts (``GRID_TILE``,
        ``GRID_DEGREES``, ``GRID_SHIFT_X``, ``GRID_SHIFT_Y``), the kept one (``GRID_CHOICE``)
        and cutmix's λ (``CUTMIX_LAMBDA``): with the same image and model a file gets the
        same boxes, gridmask draw and λ at any world size. Cutmix's partner permutation, the
        one batch-level draw (partners are in the rank's own batch), is the argsort of the
        samples' ``CUTMIX_PARTNER`` uniforms: not world-size invariant. Resumes need no state.
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
        box: BoxRule = "inside",
        gridmask: GridMask | None = None,
        draws: int = 8,
        seed: int = 0,
        max_mask_elements: int = MAX_MASK_ELEMENTS,
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
        check_choice("box", box, BOX_RULES)
        check_type("draws", draws, int)
        check_range("draws", draws, 1)
        check_type("max_mask_elements", max_mask_elements, int)
        check_range("max_mask_elements", max_mask_elements, 1)
        check_type("seed", seed, int)
        check_range("seed", seed, 0, 2**63 - 1)
        if gridmask is not None and not isinstance(gridmask, GridMask):
            raise TypeError(
                f"`gridmask` must be None or a dali_gridaug.GridMask, got {type(gridmask).__name__}"
            )
        if gridmask is not None and gridmask.square_p != 1.0:
            raise ValueError(
                "`gridmask.square_p` must be 1 for the Keep stage (it draws standard GridMask "
                f"squares; random squares are the in-graph augmentation's), got {gridmask.square_p}"
            )
        self.model = model
        self.method: str = method
        self.tau = float(tau)
        self.length = int(length)
        self.saliency: str = saliency
        self.alpha = float(alpha)
        self.box: str = box
        self.gridmask: GridMask | None = gridmask
        self.draws = int(draws)
        self.seed = int(seed)
        self.max_mask_elements = int(max_mask_elements)

    def __repr__(self) -> str:
        return (
            f"KeepStage(method={self.method!r}, tau={self.tau}, length={self.length}, "
            f"saliency={self.saliency!r}, alpha={self.alpha}, box={self.box!r}, "
            f"gridmask={self.gridmask}, draws={self.draws}, seed={self.seed})"
        )

    def __call__(self, batch: Batch) -> Batch:
        """Sample the Keep parameters for ``batch`` and apply them."""
        return self.apply(batch, self.sample_params(batch))

    # -- sampling --------------------------------------------------------------------------

    def sample_params(self, batch: Batch) -> KeepParams:
        """Compute the saliency and draw every region for ``batch`` (no image is changed).

        Args:
            batch: loader batch; ``images`` ``(B, 3, H, W)``, ``labels`` ``(B,)`` int64,
                ``clean`` ``(B, 3, H, W)`` for ``"paste"``; ``epoch`` and ``position`` key the
                draws.

        Returns:
            The :class:`KeepParams` of this step.
        """
        images = self._check_batch(batch)
        b, _, height, width = images.shape
        device = images.device
        keys = self.sample_keys(batch)
        source = batch.clean if self.method == "paste" else images
        g, num_classes = self._saliency_map(source, batch.labels)
        if self.method == "gridmask":
            return self._sample_gridmask(g, num_classes, height, width, keys)
        partner = torch.arange(b, device=device)
        if self.method == "cutmix":
            lam = keyed.beta(keys, keyed.Stream.CUTMIX_LAMBDA, self.alpha)
            partner = keyed.permutation(keys, keyed.Stream.CUTMIX_PARTNER)
            hs, ws = cut_sides(lam, height, width)
        else:
            hs = ws = torch.full((b,), self.length, dtype=torch.int64, device=device)
        paste = self.method == "paste"
        boxes = select_boxes(
            g,
            hs,
            ws,
            (height, width),
            rule="inside" if paste else self.box,
            which="paste" if paste else "cut",
            tau=self.tau,
            keys=keys,
        )
        lam = torch.ones(b, dtype=torch.float32, device=device)
        if self.method == "cutmix":  # λ from the area actually pasted
            area = box_area(boxes).to(torch.float64)
            lam = (1.0 - area / (height * width)).to(torch.float32)
        return KeepParams(
            keep=self._box_keep(boxes, height, width),
            boxes=boxes,
            partner=partner,
            lam=lam,
            num_classes=num_classes,
            saliency=g,
        )

    def sample_keys(self, batch: Batch) -> torch.Tensor:
        """``(B,)`` int64 keys of ``(seed, batch.epoch, position)`` on the batch's device;
        ``position`` is ``batch.position``, or ``arange(B)`` when it is empty (a hand-built
        batch).
        """
        images = batch.images
        position = batch.position
        if position.numel() == 0:
            position = torch.arange(images.shape[0], device=images.device)
        elif position.shape != (images.shape[0],):
            raise ValueError(
                f"`batch.position` must be empty or of shape ({images.shape[0]},), got "
                f"{tuple(position.shape)}"
            )
        return keyed.sample_keys(self.seed, batch.epoch, position.to(images.device))

    def gridmask_for(self, height: int) -> GridMask:
        """The GridMask drawn from for images of height ``height``: ``gridmask``, or the
        default (:func:`~dali_gridaug.saliency.grid.default_gridmask`) when it is ``None``.
        """
        return default_gridmask(height) if self.gridmask is None else self.gridmask

    def _sample_gridmask(
        self, g: torch.Tensor, num_classes: int, height: int, width: int, keys: torch.Tensor
    ) -> KeepParams:
        b, device = g.shape[0], g.device
        gridmask = self.gridmask_for(height)
        grid = sample_grid_draws(gridmask, keys, self.draws)
        keep, dropped, draw = choose_grid_draw(
            g,
            grid,
            height=height,
            width=width,
            mode=gridmask.mode,
            tau=self.tau,
            keys=keys,
            max_elements=self.max_mask_elements,
        )
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

    @staticmethod
    def _box_keep(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
        with boxes.device:  # the kernel's factory functions follow the default device
            return box_visible_mask(torch, height, width, boxes)

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
            self.gridmask_for(height)
        return images


_NO_CLEAN = (
    "method='paste' needs the clean view in `batch.clean`, got None; build the loader with "
    "`keep_clean=True`"
)
