"""Early loss head for cheap saliency (KeepAugment §3.1, "early head based approximation").

KeepAugment (Gong et al., 2021, https://arxiv.org/abs/2011.11778): "we add an additional
average pooling layer and a linear head after the first block of our networks", trained with
the standard loss plus the auxiliary loss with coefficient 0.3 (§4 "Settings", as Inception's
auxiliary heads). The saliency is then the gradient of the early head's logit, which needs a
forward and backward through the stem and the first stage only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dali_gridaug._validate import check_range, check_type

_RESNET_PARTS = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
_RESNET_PARTS += ("avgpool", "fc")

EARLY_LOSS_WEIGHT = 0.3
"""Weight of the early head's auxiliary loss in the paper."""


class EarlyHeadResNet(nn.Module):
    """A torchvision ResNet with an extra avg-pool + linear head after ``layer1``.

    Same wrapping convention as :class:`dali_gridaug.models.GridMixHead`.

    ``forward`` returns ``(logits, early_logits)`` in train mode (both ``(B, K)``) and plain
    ``(B, K)`` logits in eval mode, so evaluation code and the saliency pass (eval mode) see a
    normal classifier. Train with :func:`early_head_loss`.

    Args:
        model: a torchvision ResNet (``conv1 … layer4, avgpool, fc``, any depth or width); it
            becomes the ``resnet`` submodule, its parameters shared, not copied.
        num_classes: logit count K of the early head; ``None`` takes ``model.fc.out_features``.
            It must equal the main head's K, since both heads share the labels.

    Raises:
        TypeError: when ``model`` lacks the ResNet parts or ``num_classes`` is not an int.
        ValueError: when ``num_classes`` differs from the main head's.
    """

    def __init__(self, model: nn.Module, num_classes: int | None = None) -> None:
        super().__init__()
        if not all(hasattr(model, name) for name in _RESNET_PARTS):
            raise TypeError(
                "`model` must be a torchvision ResNet (conv1, bn1, relu, maxpool, layer1 … "
                f"layer4, avgpool, fc), got {type(model).__name__}"
            )
        main_classes = model.fc.out_features
        if num_classes is None:
            num_classes = main_classes
        check_type("num_classes", num_classes, int)
        if num_classes != main_classes:
            raise ValueError(
                f"`num_classes` must equal the model's logit count {main_classes}, "
                f"got {num_classes}"
            )
        convs = [m for m in model.layer1.modules() if isinstance(m, nn.Conv2d)]
        channels = convs[-1].out_channels
        self.resnet = model
        self.early_pool = nn.AdaptiveAvgPool2d(1)
        self.early_fc = nn.Linear(channels, num_classes)

    def _stage1(self, x: torch.Tensor) -> torch.Tensor:
        r = self.resnet
        return r.layer1(r.maxpool(r.relu(r.bn1(r.conv1(x)))))

    def _early_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.early_fc(torch.flatten(self.early_pool(features), 1))

    def early_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Early-head logits: stem + ``layer1`` + head only.

        Args:
            x: ``(B, 3, H, W)`` normalized images.

        Returns:
            ``(B, K)`` logits.
        """
        return self._early_head(self._stage1(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``(logits, early_logits)`` in train mode, ``logits`` in eval mode; each ``(B, K)``."""
        r = self.resnet
        features = self._stage1(x)
        deep = r.layer4(r.layer3(r.layer2(features)))
        logits = r.fc(torch.flatten(r.avgpool(deep), 1))
        if self.training:
            return logits, self._early_head(features)
        return logits


def early_head_loss(
    main_loss: torch.Tensor,
    early_logits: torch.Tensor,
    target: torch.Tensor,
    weight: float = EARLY_LOSS_WEIGHT,
) -> torch.Tensor:
    """``main_loss + weight · CE(early_logits, target)``.

    Args:
        main_loss: scalar loss of the main head.
        early_logits: ``(B, K)`` early-head logits.
        target: ``(B,)`` int64 labels or ``(B, K)`` float soft targets (rows sum to 1).
        weight: auxiliary loss coefficient, ≥ 0 (paper: 0.3).

    Returns:
        Scalar loss.
    """
    check_range("weight", weight, 0)
    return main_loss + weight * F.cross_entropy(early_logits, target)
