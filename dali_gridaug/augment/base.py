"""The contract every augmentation follows: declare its parameters, sample them once, apply
them in the graph, and (mixing ones) say what they do to the labels.

``sample`` runs on the host once per batch with an explicit :class:`numpy.random.Generator`
(vectorized over the batch) and returns the arrays its :meth:`Augment.schema` declares. The
parameter source feeds them into the DALI graph; the same draw drives the image op and, through
the emitted parameters, the labels. Every geometric parameter is in the coordinates of the
output image (after the horizontal flip); only the graph-only paste arguments of a mixing
augmentation are in the coordinates of the un-flipped source image (the paste runs on uint8
pixels before the flip, which ``crop_mirror_normalize`` does).

Two kinds:

- mask augmentations (:class:`MaskAugment`): a per-sample visibility mask and a fill
  (``out = x·M + fill·(1 − M)`` on normalized pixels);
- mixing augmentations (:class:`MixAugment`): a paste from a partner image and a
  :meth:`MixAugment.labels` update; at most one per pipeline, applied last.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import ModuleType
from typing import Any, ClassVar, Literal

import numpy as np

from dali_gridaug._validate import check_choice, check_int

Backend = Literal["auto", "dali", "kernel"]
#: Parameter name → ``(B, *ParamSpec.shape)`` array.
Params = dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    """One per-batch parameter of an augmentation.

    Attributes:
        name: key in :meth:`Augment.sample`'s dict (graph outputs are ``"{index}.{name}"``).
        dtype: numpy dtype of the array.
        shape: per-sample shape (the batch array is ``(B, *shape)``; ``()`` = one scalar).
        emitted: also a pipeline output (for the labels, tests and previews); False for
            graph-only arguments (e.g. paste coordinates).
    """

    name: str
    dtype: type
    shape: tuple[int, ...] = ()
    emitted: bool = True


@dataclasses.dataclass(frozen=True)
class SampleContext:
    """What :meth:`Augment.sample` knows of the batch it draws for, built once per batch by
    the parameter source (:class:`~dali_gridaug.params.ParamSource`) and passed to every
    augmentation.

    Attributes:
        batch_size: B, the samples drawn.
        height: image height H in pixels (output coordinates).
        width: image width W in pixels.
        epoch: 0-based epoch (schedules).
        flip: ``(B,)`` 0/1 horizontal-flip coins applied after a paste (paste arguments are
            mirrored where 1), or None when the paste runs on flipped images.
    """

    batch_size: int
    height: int
    width: int
    epoch: int = 0
    flip: np.ndarray | None = None

    def __post_init__(self) -> None:
        check_int("batch_size", self.batch_size, 1)
        check_int("height", self.height, 1)
        check_int("width", self.width, 1)
        check_int("epoch", self.epoch, 0)
        if self.flip is not None and np.shape(self.flip) != (self.batch_size,):
            raise ValueError(
                f"`flip` must have shape ({self.batch_size},) (one coin per sample), "
                f"got {np.shape(self.flip)}"
            )


@dataclasses.dataclass(frozen=True)
class LabelUpdate:
    """What a mixing augmentation did to the labels of a batch (torch, on the label device).

    Attributes:
        target: ``(B, K)`` float32 soft target, smoothed with the loader's ε.
        lam: ``(B,)`` float32 weight of the sample's own label.
        partner: ``(B,)`` int64 batch position of the image mixed in.
        patch_labels: ``(B, n, n)`` int64 per-cell labels (GridMix), else None.
    """

    target: Any
    lam: Any
    partner: Any
    patch_labels: Any = None


@dataclasses.dataclass(frozen=True)
class Augment:
    """Base class of the augmentation configs (frozen, validated dataclasses).

    Attributes:
        backend: ``"dali"`` (DALI's own operators), ``"kernel"`` (an ``xp`` kernel run as a
            DALI ``python_function``: CuPy on GPU, NumPy on CPU) or ``"auto"`` (see
            :meth:`resolve_backend`).
    """

    #: True for batch-mixing augmentations (they run last, at most one per pipeline).
    mixing: ClassVar[bool] = False
    #: Registry name (CLI and recipe files).
    name: ClassVar[str] = ""
    #: parameters only :meth:`apply_xp` reads (not fed where the augmentation runs on DALI).
    kernel_params: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        check_choice("backend", self.backend, ("auto", "dali", "kernel"))

    def backends(self) -> tuple[str, ...]:
        """Backends that can run this configuration, preferred first (every configuration
        runs on DALI's operators).
        """
        return ("dali", "kernel")

    def resolve_backend(self) -> str:
        """The backend used: the explicit choice, else the first of :meth:`backends`."""
        return self.backends()[0] if self.backend == "auto" else self.backend

    def check_geometry(self, height: int, width: int, batch_size: int) -> None:
        """Raise ``ValueError`` if the config cannot run on ``height×width`` images in batches
        of ``batch_size`` (called by ``create_loader``).
        """
        if self.mixing and batch_size < 2:
            raise ValueError(
                f"{type(self).__name__} mixes images within a batch: `batch_size` must be ≥ 2, "
                f"got {batch_size}"
            )

    def schema(self, height: int, width: int) -> tuple[ParamSpec, ...]:
        """The parameters :meth:`sample` returns for ``height×width`` images, in order."""
        raise NotImplementedError

    def target_smoothing(self) -> float:
        """This config's own label smoothing ε (timm's ``Mixup``/``MixupCutMix`` argument,
        kept for compatibility); 0 unless it has one.
        """
        return 0.0

    def sample(self, rng: np.random.Generator, ctx: SampleContext) -> Params:
        """Draw this batch's parameters (arrays ``(B, *spec.shape)`` of :meth:`schema`).

        Args:
            rng: the batch's generator (the only randomness).
            ctx: the batch's shape, epoch and flip coins (:class:`SampleContext`).
        """
        raise NotImplementedError

    def apply_xp(self, xp: ModuleType, images: Any, params: Mapping[str, Any]) -> Any:
        """Apply with an ``xp`` kernel to a ``(B, H, W, C)`` float array; returns a new one."""
        raise NotImplementedError


class MaskAugment(Augment):
    """A per-sample augmentation expressed as a visibility mask ``M`` and a fill:
    ``out = x·M + fill·(1 − M)`` on normalized pixels (a fill of 0 drops to exactly 0).
    """

    def fill(self) -> float | Literal["noise"]:
        """The value of dropped pixels: a constant, or ``"noise"`` (standard normal)."""
        return 0.0

    def visible_mask_dali(
        self, params: Mapping[str, Any], height: int, width: int, device: str
    ) -> Any:
        """The visibility mask: ``(H, W, 1)`` uint8 DataNode on ``device`` (``"cpu"``/
        ``"gpu"``), 1 where the pixel stays, in output coordinates; ``params`` are the CPU
        parameter nodes.
        """
        raise NotImplementedError

    def fill_dali(self, params: Mapping[str, Any], height: int, width: int, device: str) -> Any:
        """Optional: the fill already placed, a CHW float ``(C, H, W)`` node in output
        coordinates that is 0 outside the drop (noise drawn for the drop only; it travels
        through a later paste); None to fill ``fill()`` by region.
        """
        return None


def ones_mask(height: int, width: int, device: str) -> Any:
    """A ``(H, W, 1)`` uint8 ones image per sample (layout ``HWC``) on ``device``."""
    from nvidia.dali import fn, types

    return fn.constant(
        idata=1, shape=[height, width, 1], dtype=types.UINT8, layout="HWC", device=device
    )


class MixAugment(Augment):
    """A batch-mixing augmentation: a paste from a partner and its label update.

    :meth:`sample` must return at least ``lam`` ``(B,)`` float32 and ``partner`` ``(B,)``
    int32 (emitted) and, when :meth:`pastes`, the paste arguments of :func:`paste_specs`.
    """

    mixing: ClassVar[bool] = True

    def paste_dali(self, images: Any, params: Mapping[str, Any]) -> Any:
        """Apply the paste to HWC images (uint8 pixels or a uint8 mask) with DALI."""
        from nvidia.dali import fn

        return fn.multi_paste(
            images,
            in_ids=params["paste_ids"],
            in_anchors=params["paste_anchors"],
            shapes=params["paste_shapes"],
            out_anchors=params["paste_anchors"],
        )

    def pastes(self) -> bool:
        """Whether this configuration pastes (declares and uses :func:`paste_specs`)."""
        return True

    def blend_dali(self, images: Any, params: Mapping[str, Any], plain: Any) -> Any:
        """Optional blend on the normalized images after the paste and the masks (Mixup):
        return the new images, or None (no blend). ``plain`` is what a partner contributes:
        ``images`` itself, or the un-pasted images when :meth:`blend_plain`.
        """
        return None

    def blend_plain(self) -> bool:
        """True when :meth:`blend_dali` needs the partner's images without the paste."""
        return False

    def unmixed(self, ctx: SampleContext) -> Params:
        """The draw of a batch this augmentation leaves alone (``loader.mixup_enabled =
        False``): its :meth:`schema`'s arrays with ``lam`` 1, ``partner`` the sample itself,
        and (when :meth:`pastes`) empty paste boxes. The graph then returns every image
        unchanged and :meth:`labels` the (smoothed) one-hot target. A subclass with more
        parameters adds its own "not applied" values (the schema check names what is missing).
        """
        from dali_gridaug.geometry import identity_partner

        b, h, w = ctx.batch_size, ctx.height, ctx.width
        own = identity_partner(b).astype(np.int32)
        out: Params = {"lam": np.ones(b, np.float32), "partner": own}
        if self.pastes():
            ids = next(s for s in self.schema(h, w) if s.name == "paste_ids")
            boxes = np.zeros((b, ids.shape[0] - 1, 4), np.int64)
            out.update(paste_args(own, boxes, h, w, None))
        return out

    def labels(
        self, params: Mapping[str, Any], y: Any, num_classes: int, smoothing: float = 0.0
    ) -> LabelUpdate:
        """The batch's label update from its emitted parameters (torch tensors).

        Args:
            params: this augmentation's emitted parameters as ``(B, *shape)`` tensors on the
                label device.
            y: ``(B,)`` int64 hard labels.
            num_classes: K.
            smoothing: the loader's label smoothing ε, applied with timm's arithmetic
                (:func:`~dali_gridaug.labels.mix_target`), so targets equal timm's bit for bit.
        """
        from dali_gridaug.labels import mix_target

        lam = params["lam"].reshape(-1).float()
        partner = params["partner"].reshape(-1).long()
        return LabelUpdate(mix_target(y, partner, lam, num_classes, smoothing), lam, partner)


def paste_specs(pieces: int) -> tuple[ParamSpec, ...]:
    """Graph-only ``fn.multi_paste`` arguments of :func:`paste_args` with ``pieces`` boxes."""
    return (
        ParamSpec("paste_ids", np.int32, (pieces + 1,), emitted=False),
        ParamSpec("paste_anchors", np.int32, (pieces + 1, 2), emitted=False),
        ParamSpec("paste_shapes", np.int32, (pieces + 1, 2), emitted=False),
    )


def paste_args(
    partner: np.ndarray, boxes: np.ndarray, height: int, width: int, flip: np.ndarray | None
) -> Params:
    """``fn.multi_paste`` arguments: the own image whole, then each box from the partner.

    Args:
        partner: ``(B,)`` int partner positions.
        boxes: ``(B, k, 4)`` int boxes ``(y0, x0, y1, x1)`` in output coordinates.
        height: image height H.
        width: image width W.
        flip: ``(B,)`` coins of a flip that follows the paste (boxes are mirrored where 1),
            or None.

    Returns:
        ``paste_ids (B, k+1)``, ``paste_anchors (B, k+1, 2)``, ``paste_shapes (B, k+1, 2)``
        int32.
    """
    from dali_gridaug.geometry import identity_partner, mirror_boxes

    b, k, _ = boxes.shape
    # An empty box becomes the zero-size region anchored at (H, W), past the image's end: the
    # GPU kernel's sweep never closes a zero-width region, so one anchored inside the image
    # would copy its source from there on (the CPU operator pastes nothing either way).
    empty = (boxes[..., 2:] <= boxes[..., :2]).any(-1, keepdims=True)
    end = np.array([height, width, height, width])
    boxes = np.where(empty, end, mirror_boxes(boxes, width, flip))
    ids = np.concatenate([identity_partner(b)[:, None], np.repeat(partner[:, None], k, 1)], 1)
    anchors = np.concatenate([np.zeros((b, 1, 2), np.int64), boxes[:, :, :2]], 1)
    full = np.broadcast_to(np.array([height, width]), (b, 1, 2))
    shapes = np.concatenate([full, boxes[:, :, 2:] - boxes[:, :, :2]], 1)
    return {
        "paste_ids": ids.astype(np.int32),
        "paste_anchors": anchors.astype(np.int32),
        "paste_shapes": shapes.astype(np.int32),
    }
