"""Model, loss and Keep stage of a recipe (moved unchanged from the former ``train.py``; the
models/losses package replaces them).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dali_gridaug.recipes import Recipe, RecipeError


def build_model(recipe: Recipe, num_classes: int) -> nn.Module:
    """The recipe's torchvision model with ``num_classes`` outputs, randomly initialised;
    wrapped in :class:`~dali_gridaug.models.GridMixHead` for the GridMix loss and in
    :class:`~dali_gridaug.saliency.EarlyHeadResNet` for Keep's early-head saliency.
    """
    import torchvision

    cfg = recipe.model
    kwargs: dict[str, Any] = {"weights": None, "num_classes": num_classes}
    if cfg.zero_init_residual:
        kwargs["zero_init_residual"] = True
    try:
        model = torchvision.models.get_model(cfg.name, **kwargs)
    except ValueError as e:
        raise RecipeError(f"recipe {recipe.name}: `model.name` {cfg.name!r}: {e}") from None
    if cfg.cifar_stem:
        if not isinstance(model, torchvision.models.ResNet):
            raise RecipeError(f"recipe {recipe.name}: `model.cifar_stem` needs a ResNet")
        model.conv1 = nn.Conv2d(3, model.conv1.out_channels, 3, 1, 1, bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
        model.maxpool = nn.Identity()
    if recipe.loss_kind == "gridmix":
        from dali_gridaug.models import GridMixHead

        model = GridMixHead(model, num_classes, recipe.mixer.n)  # type: ignore[union-attr]
    if recipe.keep is not None and recipe.keep.saliency == "early":
        from dali_gridaug.saliency import EarlyHeadResNet

        model = EarlyHeadResNet(model, num_classes)
    return model


class Criterion:
    """The recipe's loss on a model output and a :class:`~dali_gridaug.batch.Batch`.

    ``gridmix``: GridMix's soft-target CE + γ·Σ cells CE (the model returns ``(logits, local)``);
    otherwise soft-target CE when ``batch.target`` is ``(B, K)`` and CE (with label smoothing)
    when it holds hard labels. With Keep's early head the model returns ``(logits, early)`` and
    ``early_weight``·CE(early, target) is added.
    """

    def __init__(self, recipe: Recipe) -> None:
        from dali_gridaug.loss import GridMixLoss, soft_target_cross_entropy

        self.kind = recipe.loss_kind
        self.smoothing = recipe.loss.label_smoothing
        self.soft = soft_target_cross_entropy
        self.gridmix = GridMixLoss(recipe.loss.gamma) if self.kind == "gridmix" else None
        keep = recipe.keep
        self.early = keep.early_weight if keep is not None and keep.saliency == "early" else None

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
            loss = self.soft(output, target)
        else:
            loss = F.cross_entropy(output.float(), target, label_smoothing=self.smoothing)
        if extra is not None:
            loss = loss + self.early * F.cross_entropy(extra.float(), target)
        return loss


def build_keep(recipe: Recipe, model: nn.Module, generator: torch.Generator) -> Any:
    """The recipe's Keep stage (``[keep]``), or ``None``. ``model`` is the bare model (not
    the DDP wrapper): saliency needs no gradient synchronisation.
    """
    if recipe.keep is None:
        return None
    from dali_gridaug.saliency import KeepStage

    k = recipe.keep
    return KeepStage(
        model,
        k.method,
        tau=k.tau,
        length=k.length,
        saliency=k.saliency,
        alpha=k.alpha,
        draws=k.draws,
        generator=generator,
    )
