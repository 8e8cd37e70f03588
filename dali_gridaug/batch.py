"""The unit the loader yields and every later stage (saliency, loss) consumes."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import torch


@dataclasses.dataclass(frozen=True)
class Batch:
    """One training or evaluation batch; unpacks as ``images, target = batch``.

    Attributes:
        images: ``(B, 3, H, W)`` normalized float (``dtype`` of the loader), NCHW, on the
            loader's device.
        target: what the loss wants: soft labels ``(B, K)`` float32 when a mixing
            augmentation ran or label smoothing ε > 0 (``(1 − ε)·t + ε/K``), else equal to
            ``labels``.
        labels: hard labels of the (un-mixed) images, ``(B,)`` int64.
        index: each sample's index in the dataset (its file's place in
            ``loader.source.files``; tar shards: in the shards' member order), ``(B,)`` int64.
        lam: weight of the image's own label in ``target``, ``(B,)`` float32: the fraction of
            the output's pixels that come from the image itself (where ``partner`` is the
            sample itself the paste copies its own pixels and the label is its own either way;
            1.0 when nothing was mixed).
        partner: batch position of the image mixed in, ``(B,)`` int64 (own position when
            nothing was mixed).
        patch_labels: GridMix per-cell labels ``(B, n, n)`` int64, else ``None``.
        boxes: region cut or pasted by a Keep stage, ``(B, 4)`` int64 ``(y0, x0, y1, x1)``,
            else ``None``.
        clean: the un-augmented view ``(B, 3, H, W)`` when the pipeline was asked for it
            (Keep selective-paste), else ``None``.
        epoch: the epoch this batch belongs to.
        position: each sample's position in the epoch's global order (the same at any world
            size, :mod:`dali_gridaug.order`), ``(B,)`` int64; keys per-sample draws of later
            stages (Keep). Empty when a batch is built by hand.
    """

    images: torch.Tensor
    target: torch.Tensor
    labels: torch.Tensor
    index: torch.Tensor
    lam: torch.Tensor
    partner: torch.Tensor
    patch_labels: torch.Tensor | None = None
    boxes: torch.Tensor | None = None
    clean: torch.Tensor | None = None
    epoch: int = 0
    position: torch.Tensor = dataclasses.field(
        default_factory=lambda: torch.empty(0, dtype=torch.int64)
    )

    def __iter__(self) -> Iterator[torch.Tensor]:
        """Unpack as ``images, target`` like a torchvision DataLoader batch."""
        return iter((self.images, self.target))

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def replace(self, **changes: object) -> Batch:
        """A copy with some fields replaced (the batch itself is immutable)."""
        return dataclasses.replace(self, **changes)
