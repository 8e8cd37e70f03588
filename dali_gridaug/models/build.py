"""A recipe's model and loss: ``build_model`` and ``build_criterion``.

The model is a torchvision classification model, randomly initialised, optionally with the
3×3/1 CIFAR stem, wrapped in :class:`~dali_gridaug.models.GridMixHead` for the GridMix loss and
in :class:`~dali_gridaug.models.EarlyHeadResNet` for Keep's early-head saliency. The criterion
takes the model's output and a :class:`~dali_gridaug.batch.Batch`; label smoothing is not
applied here: the loader applies it to every target (``create_loader(label_smoothing=…)``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from dali_gridaug.loss import GridMixLoss, soft_target_cross_entropy
from dali_gridaug.models.heads import EarlyHeadResNet, GridMixHead

if TYPE_CHECKING:
    from dali_gridaug.recipes import Recipe


def build_model(recipe: Recipe, num_classes: int) -> nn.Module:
    """The recipe's torchvision model with ``num_classes`` outputs, randomly initialised.

    Args:
        recipe: a validated recipe (``[model]``, and ``[loss]``/``[keep]`` for the heads).
        num_classes: K, the dataset's class count.

    Returns:
        The model; with the GridMix loss a :class:`GridMixHead`, with ``keep.saliency =
        "early"`` an :class:`EarlyHeadResNet`.
    """
    import torchvision

    cfg = recipe.model
    kwargs: dict[str, Any] = {"weights": None, "num_classes": num_classes}
    if cfg.zero_init_residual:
        kwargs["zero_init_residual"] = True
    model = torchvision.models.get_model(cfg.name, **kwargs)
    if cfg.cifar_stem:  # the recipe checked that the model is a ResNet
        model.conv1 = nn.Conv2d(3, model.conv1.out_channels, 3, 1, 1, bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
        model.maxpool = nn.Identity()
    if recipe.loss_kind == "gridmix":
        model = GridMixHead(model, num_classes, recipe.mixer.n)  # type: ignore[union-attr]
    if recipe.keep is not None and recipe.keep.saliency == "early":
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


def build_criterion(recipe: Recipe) -> Criterion:
    """The recipe's :class:`Criterion` (kind from ``recipe.loss_kind``, γ from ``[loss]``,
    the early weight from ``[keep]`` when its saliency is ``"early"``).
    """
    keep = recipe.keep
    early = keep.early_weight if keep is not None and keep.saliency == "early" else None
    return Criterion(recipe.loss_kind, recipe.loss.gamma, early)
