"""Models and losses over torchvision: :func:`classifier` and :class:`Criterion`.

The model is a torchvision classification model, randomly initialised, optionally with the
3×3/1 CIFAR stem, wrapped in :class:`~dali_gridaug.models.GridMixHead` for the GridMix loss and
in :class:`~dali_gridaug.models.EarlyHeadResNet` for Keep's early-head saliency. The criterion
takes the model's output and a :class:`~dali_gridaug.batch.Batch`; label smoothing is not
applied here: the loader applies it to every target (``create_loader(label_smoothing=…)``).
A recipe's model and criterion are built from these by
:func:`dali_gridaug.recipes.build_model` and :func:`dali_gridaug.recipes.build_criterion`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dali_gridaug.loss import GridMixLoss, soft_target_cross_entropy
from dali_gridaug.models.heads import EarlyHeadResNet, GridMixHead


def classifier(
    name: str,
    num_classes: int,
    *,
    cifar_stem: bool = False,
    zero_init_residual: bool = False,
    gridmix_cells: int | None = None,
    early_head: bool = False,
) -> nn.Module:
    """A torchvision classification model with ``num_classes`` outputs, randomly initialised.

    Args:
        name: a torchvision model name (``torchvision.models.get_model``).
        num_classes: K, the dataset's class count.
        cifar_stem: replace a ResNet's 7×7/2 stem and max-pool with one 3×3/1 convolution.
        zero_init_residual: zero-initialise each residual branch's last BatchNorm (ResNets).
        gridmix_cells: wrap in a :class:`GridMixHead` with ``n`` cells per side (the GridMix
            loss), or None.
        early_head: wrap in an :class:`EarlyHeadResNet` (Keep's early-head saliency).

    Returns:
        The model; its output is ``(B, K)`` logits, ``(logits, local)`` with the GridMix head,
        ``(logits, early)`` with the early head.
    """
    import torchvision

    kwargs: dict[str, Any] = {"weights": None, "num_classes": num_classes}
    if zero_init_residual:
        kwargs["zero_init_residual"] = True
    model = torchvision.models.get_model(name, **kwargs)
    if cifar_stem:
        model.conv1 = nn.Conv2d(3, model.conv1.out_channels, 3, 1, 1, bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
        model.maxpool = nn.Identity()
    if gridmix_cells is not None:
        model = GridMixHead(model, num_classes, gridmix_cells)
    if early_head:
        model = EarlyHeadResNet(model, num_classes)
    return model


class Criterion:
    """A recipe's loss on a model output and a :class:`~dali_gridaug.batch.Batch`.

    ``gridmix``: GridMix's soft-target CE + γ·Σ cells CE (the model returns
    ``(logits, local)``); otherwise soft-target CE when ``batch.target`` is a ``(B, K)``
    distribution and CE when it holds ``(B,)`` hard labels. With Keep's early head the model
    returns ``(logits, early)`` and ``early_weight``·CE(early, target) is added.

    Args:
        kind: ``"ce"``, ``"soft_ce"`` or ``"gridmix"``.
        gamma: GridMix's local loss weight γ (``gridmix`` only).
        early_weight: the early head's loss weight, or ``None`` without an early head.
    """

    def __init__(self, kind: str, gamma: float = 0.15, early_weight: float | None = None) -> None:
        self.kind = kind
        self.gridmix = GridMixLoss(gamma) if kind == "gridmix" else None
        self.early = early_weight

    def __call__(self, output: Any, batch: Any) -> torch.Tensor:
        """The scalar loss of ``output`` (the model's return value) for ``batch``."""
        target = batch.target
        if self.gridmix is not None:
            logits, local = output
            return self.gridmix(logits, local, target, batch.patch_labels)
        extra = None
        if self.early is not None:
            output, extra = output
        if target.ndim == 2:
            loss = soft_target_cross_entropy(output, target)
        else:
            loss = F.cross_entropy(output.float(), target)
        if extra is not None:
            loss = loss + self.early * F.cross_entropy(extra.float(), target)
        return loss
