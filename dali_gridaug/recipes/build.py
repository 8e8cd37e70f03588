"""A recipe's model and loss: :func:`build_model` and :func:`build_criterion`.

The recipe-driven side of :mod:`dali_gridaug.models`: ``[model]`` picks the torchvision model
and its stem, ``[loss]`` the criterion (and the GridMix head), ``[keep]`` the early head.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dali_gridaug.models import Criterion, classifier

if TYPE_CHECKING:
    from torch import nn

    from dali_gridaug.recipes import Recipe


def build_model(recipe: Recipe, num_classes: int) -> nn.Module:
    """The recipe's torchvision model with ``num_classes`` outputs, randomly initialised.

    Args:
        recipe: a validated recipe (``[model]``, and ``[loss]``/``[keep]`` for the heads).
        num_classes: K, the dataset's class count.

    Returns:
        The model (:func:`~dali_gridaug.models.classifier`); with the GridMix loss a
        :class:`~dali_gridaug.models.GridMixHead`, with ``keep.saliency = "early"`` an
        :class:`~dali_gridaug.models.EarlyHeadResNet`.
    """
    cfg = recipe.model
    gridmix = recipe.mixer.n if recipe.loss_kind == "gridmix" else None  # type: ignore[union-attr]
    return classifier(
        cfg.name,
        num_classes,
        cifar_stem=cfg.cifar_stem,  # the recipe checked that the model is a ResNet
        zero_init_residual=cfg.zero_init_residual,
        gridmix_cells=gridmix,
        early_head=recipe.keep is not None and recipe.keep.saliency == "early",
    )


def build_criterion(recipe: Recipe) -> Criterion:
    """The recipe's :class:`~dali_gridaug.models.Criterion` (kind from ``recipe.loss_kind``,
    γ from ``[loss]``, the early weight from ``[keep]`` when its saliency is ``"early"``).
    """
    keep = recipe.keep
    early = keep.early_weight if keep is not None and keep.saliency == "early" else None
    return Criterion(recipe.loss_kind, recipe.loss.gamma, early)
