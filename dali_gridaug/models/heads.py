"""Extra heads on a torchvision ResNet: GridMix's local head and KeepAugment's early head.

Both wrap the model without re-writing its forward. A forward hook on one of the model's own
modules (``layer4`` for GridMix, ``layer1`` for the early head) captures that feature map while
the model's own ``forward`` computes the logits, so the backbone runs once per step. The early
head's cheap saliency pass, which must stop after ``layer1``, is a truncated copy of the model's
graph built by ``torchvision.models.feature_extraction.create_feature_extractor``.

- GridMix (Baek, Bang & Shim, 2021, Pattern Recognition): the last feature map (ResNet-50:
  2048×7×7) is adaptive-average-pooled to n×n and a 1×1 convolution gives K logits per cell
  (the local head f_l); the model's own head is f_g. The local head is used in training only.
- KeepAugment (Gong et al., 2021, https://arxiv.org/abs/2011.11778, §3.1): "an additional
  average pooling layer and a linear head after the first block", trained with the auxiliary
  loss weight 0.3; the saliency is the gradient of the early head's logit.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from dali_gridaug._validate import check_range, check_type

_RESNET_PARTS = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
_RESNET_PARTS += ("avgpool", "fc")


def _check_resnet(model: Any) -> None:
    if not isinstance(model, nn.Module) or not all(hasattr(model, n) for n in _RESNET_PARTS):
        raise TypeError(
            "`model` must be a torchvision ResNet (conv1, bn1, relu, maxpool, layer1 … "
            f"layer4, avgpool, fc), got {type(model).__name__}"
        )


class _Tap:
    """Keeps the output of one submodule from the latest forward that asked for it.

    The hook stores only while :meth:`run` is active, so eval-mode and saliency passes through
    the same module keep nothing alive.
    """

    def __init__(self, module: nn.Module) -> None:
        self.active = False
        self.output: torch.Tensor | None = None
        module.register_forward_hook(self)

    def __call__(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        if self.active:
            self.output = output

    def run(self, model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(model(x), tapped feature map)`` from one forward of ``model``."""
        self.active, self.output = True, None
        try:
            logits = model(x)
        finally:
            self.active = False
        feature, self.output = self.output, None
        if feature is None:
            raise RuntimeError("the tapped module did not run in the model's forward")
        return logits, feature


class GridMixHead(nn.Module):
    """A torchvision ResNet with GridMix's local head on ``layer4``.

    Train mode returns ``(logits (B, K), local (B, K, n, n))``, eval mode plain ``(B, K)``
    logits (the wrapped model's own output).

    Args:
        model: a torchvision ResNet; its ``fc`` is replaced by a ``num_classes`` linear layer
            if the sizes differ.
        num_classes: K.
        n: grid side of the local head (GridMix's n).
    """

    def __init__(self, model: nn.Module, num_classes: int, n: int = 4) -> None:
        super().__init__()
        check_type("num_classes", num_classes, int)
        check_range("num_classes", num_classes, 1)
        check_type("n", n, int)
        check_range("n", n, 1)
        _check_resnet(model)
        channels = model.fc.in_features
        if model.fc.out_features != num_classes:
            model.fc = nn.Linear(channels, num_classes)
        self.model = model
        self.n = n
        self.local = nn.Sequential(nn.AdaptiveAvgPool2d(n), nn.Conv2d(channels, num_classes, 1))
        self._tap = _Tap(model.layer4)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``(logits, local)`` in train mode, ``logits`` in eval mode.

        Args:
            x: ``(B, 3, H, W)`` normalized images.
        """
        if not self.training:
            return self.model(x)
        logits, feature = self._tap.run(self.model, x)
        return logits, self.local(feature)


class EarlyHeadResNet(nn.Module):
    """A torchvision ResNet with an extra avg-pool + linear head after ``layer1``.

    ``forward`` returns ``(logits, early_logits)`` in train mode (both ``(B, K)``) and plain
    ``(B, K)`` logits in eval mode, so evaluation code and the saliency pass (eval mode) see a
    normal classifier. Train with :func:`dali_gridaug.loss.early_head_loss`.

    Args:
        model: a torchvision ResNet (any depth or width); it becomes the ``resnet``
            submodule, its parameters shared, not copied.
        num_classes: logit count K of the early head; ``None`` takes ``model.fc.out_features``.
            It must equal the main head's K, since both heads share the labels.

    Raises:
        TypeError: when ``model`` lacks the ResNet parts or ``num_classes`` is not an int.
        ValueError: when ``num_classes`` differs from the main head's.
    """

    def __init__(self, model: nn.Module, num_classes: int | None = None) -> None:
        super().__init__()
        _check_resnet(model)
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
        self.resnet = model
        self.early_pool = nn.AdaptiveAvgPool2d(1)
        self.early_fc = nn.Linear(convs[-1].out_channels, num_classes)
        self._tap = _Tap(model.layer1)

    def _early_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.early_fc(torch.flatten(self.early_pool(features), 1))

    def _stem(self) -> nn.Module:
        """The model's graph up to ``layer1``, sharing the model's modules (traced on first use
        and again after a module is replaced; not a registered submodule, so parameters and
        ``state_dict`` keys stay those of ``resnet``).
        """
        stem = self.__dict__.get("_stem_graph")
        if stem is not None and any(  # a module was replaced since (e.g. SyncBatchNorm)
            m is not self.resnet.get_submodule(n) for n, m in stem.named_children()
        ):
            stem = None
        if stem is None:
            from torchvision.models.feature_extraction import create_feature_extractor

            layer1 = self.resnet.layer1
            stem = create_feature_extractor(
                self.resnet, {"layer1": "features"}, tracer_kwargs={"leaf_modules": [type(layer1)]}
            )
            self.__dict__["_stem_graph"] = stem
        stem.training = self.training
        return stem

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_stem_graph", None)  # rebuilt on demand from the (copied) resnet
        return state

    def early_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Early-head logits: stem + ``layer1`` + head only.

        Args:
            x: ``(B, 3, H, W)`` normalized images.

        Returns:
            ``(B, K)`` logits.
        """
        return self._early_head(self._stem()(x)["features"])

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``(logits, early_logits)`` in train mode, ``logits`` in eval mode; each ``(B, K)``.

        Args:
            x: ``(B, 3, H, W)`` normalized images.
        """
        if not self.training:
            return self.resnet(x)
        logits, features = self._tap.run(self.resnet, x)
        return logits, self._early_head(features)
