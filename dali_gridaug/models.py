"""Model glue: GridMix's local head on a torchvision ResNet.

``GridMixHead`` shares the backbone: the last feature map (ResNet-50: 7×7×2048) goes to the
model's own global head (f_g) and, adaptive-average-pooled to n×n, to a 1×1 convolution
producing K logits per cell (f_l, SPEC §GridMix 6), used only in training.
"""

from __future__ import annotations

import torch
from torch import nn

from dali_gridaug._validate import check_range, check_type


class GridMixHead(nn.Module):
    """Wrap a torchvision ResNet: train mode returns ``(logits (B,K), local (B,K,n,n))``,
    eval mode plain ``logits``.

    Args:
        model: a torchvision ResNet (``conv1 … layer4, avgpool, fc``); its ``fc`` is replaced
            by a ``num_classes`` linear layer if the sizes differ.
        num_classes: K.
        n: grid side of the local head (GridMix's n).
    """

    def __init__(self, model: nn.Module, num_classes: int, n: int = 4) -> None:
        super().__init__()
        check_type("num_classes", num_classes, int)
        check_range("num_classes", num_classes, 1)
        check_type("n", n, int)
        check_range("n", n, 1)
        if not all(hasattr(model, a) for a in ("layer4", "avgpool", "fc")):
            raise TypeError("`model` must be a torchvision ResNet (conv1 … layer4, avgpool, fc)")
        channels = model.fc.in_features
        if model.fc.out_features != num_classes:
            model.fc = nn.Linear(channels, num_classes)
        self.model = model
        self.n = n
        self.local = nn.Sequential(nn.AdaptiveAvgPool2d(n), nn.Conv2d(channels, num_classes, 1))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map ``(B, C, h, w)``."""
        m = self.model
        x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        return m.layer4(m.layer3(m.layer2(m.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        feat = self.features(x)
        logits = self.model.fc(torch.flatten(self.model.avgpool(feat), 1))
        if not self.training:
            return logits
        return logits, self.local(feat)
