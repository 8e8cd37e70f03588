"""Batched vanilla-gradient saliency maps from the model being trained.

KeepAugment (Gong et al., 2021, https://arxiv.org/abs/2011.11778), §3: ``g = max_c |∂z_y/∂x|``
with ``z_y`` the logit of the true label (Simonyan et al., 2013), and the two cheap
approximations of §3.1: a ×0.5 bicubic copy of the input (``lowres_images``) and the logit of an
early head (``forward=model.early_logits``, see
:class:`dali_gridaug.models.heads.EarlyHeadResNet`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

Forward = Callable[[torch.Tensor], torch.Tensor]


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode and restore each one's own flag afterwards.

    Restoring per module (not ``model.train(was_training)``) keeps deliberately mixed states,
    e.g. frozen BatchNorm layers inside a model that is training.
    """
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


def saliency_and_logits(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    forward: Forward | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Saliency of the true-label logit for a whole batch, with one backward pass.

    The model is in eval mode for the pass and every submodule's mode is restored afterwards.
    The gradient is taken with :func:`torch.autograd.grad` with respect to the input only, so
    no parameter ``.grad`` is created or accumulated and ``requires_grad`` is left as it is.
    Samples do not interact in eval mode, so the gradient of the summed logits is each
    sample's own gradient. Under :func:`torch.autocast` the forward and backward run in the
    ambient dtype; the map is returned as float32.

    Args:
        model: classifier mapping ``(B, 3, H, W)`` to ``(B, K)`` logits.
        images: ``(B, 3, H, W)`` normalized images (not modified).
        labels: ``(B,)`` int64 true labels in ``[0, K)`` (not range-checked, which would need a
            host sync; an out-of-range label fails inside ``gather``).
        forward: what to differentiate instead of ``model(x)``, e.g. ``model.early_logits``.

    Returns:
        ``saliency``: ``(B, H, W)`` float32, ``max_c |∂z_y/∂x_c|``; ``logits``: ``(B, K)``
        detached logits of that forward pass.

    Raises:
        ValueError: on wrongly shaped inputs, or when called under ``torch.inference_mode``.
        TypeError: when the forward does not return a ``(B, K)`` tensor.
    """
    if images.ndim != 4:
        raise ValueError(f"`images` must be (B, C, H, W), got shape {tuple(images.shape)}")
    if labels.shape != images.shape[:1]:
        raise ValueError(
            f"`labels` must have shape ({images.shape[0]},), got {tuple(labels.shape)}"
        )
    if torch.is_inference_mode_enabled():
        raise ValueError("saliency needs autograd; call it outside `torch.inference_mode()`")
    fn = forward if forward is not None else model
    x = images.detach()
    if x.is_inference():
        x = x.clone()
    x.requires_grad_(True)
    with eval_mode(model), torch.enable_grad():
        logits = fn(x)
        if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
            raise TypeError(
                "the saliency forward must return (B, K) logits in eval mode, got "
                f"{type(logits).__name__}"
            )
        selected = logits.gather(1, labels.to(device=logits.device, dtype=torch.int64)[:, None])
        (grad,) = torch.autograd.grad(selected.sum(), x)
    saliency = grad.abs().amax(dim=1).float()
    return saliency, logits.detach()


def saliency_map(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    forward: Forward | None = None,
) -> torch.Tensor:
    """``(B, H, W)`` float32 saliency ``max_c |∂z_y/∂x_c|``; see :func:`saliency_and_logits`."""
    return saliency_and_logits(model, images, labels, forward=forward)[0]


def lowres_images(images: torch.Tensor) -> torch.Tensor:
    """The ×0.5 bicubic copy used for low-resolution saliency (paper §3.1, §4 "Settings").

    Args:
        images: ``(B, C, H, W)``.

    Returns:
        ``(B, C, H // 2, W // 2)``.
    """
    return F.interpolate(images, scale_factor=0.5, mode="bicubic", align_corners=False)
