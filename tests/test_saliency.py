"""Saliency maps and the early head (KeepAugment §3, §3.1).

Oracles are independent: per-sample autograd loops for the saliency of the full model and of
the early head, and hand-run ResNet stages for the early logits.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from dali_gridaug.loss import early_head_loss
from dali_gridaug.models.heads import EarlyHeadResNet
from dali_gridaug.saliency.maps import lowres_images, saliency_and_logits, saliency_map
from tests.helpers import tiny_model

K = 5


def tiny_resnet(block: type = BasicBlock, num_classes: int = K) -> ResNet:
    torch.manual_seed(0)
    return ResNet(block, [1, 1, 1, 1], num_classes=num_classes)


# -- saliency maps ---------------------------------------------------------------------------


def reference_saliency(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """One sample at a time, on a copy of the model in eval mode."""
    ref = copy.deepcopy(model).eval()
    maps = []
    for i in range(images.shape[0]):
        x = images[i : i + 1].clone().requires_grad_(True)
        logit = ref(x)[0, labels[i]]
        (grad,) = torch.autograd.grad(logit, x)
        maps.append(grad.abs().amax(dim=1)[0])
    return torch.stack(maps)


def test_saliency_equals_per_sample_gradient() -> None:
    model = tiny_model(K, dropout=0.5).train()
    torch.manual_seed(1)
    images = torch.randn(6, 3, 16, 16)
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    before = images.clone()
    g, logits = saliency_and_logits(model, images, labels)
    expected = reference_saliency(model, images, labels)
    assert g.shape == (6, 16, 16) and g.dtype == torch.float32
    torch.testing.assert_close(g, expected, rtol=1e-5, atol=1e-7)
    assert g.abs().sum() > 0
    assert logits.shape == (6, K) and not logits.requires_grad
    assert torch.equal(images, before)


def test_saliency_restores_modes_and_accumulates_no_parameter_grads() -> None:
    model = tiny_model(K, dropout=0.5).train()
    model[1].eval()  # a frozen BatchNorm inside a training model: mixed modes survive
    model[0].bias.requires_grad_(False)
    modes = [m.training for m in model.modules()]
    flags = [p.requires_grad for p in model.parameters()]
    saliency_map(model, torch.randn(3, 3, 16, 16), torch.tensor([1, 2, 3]))
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())

    model.eval()
    saliency_map(model, torch.randn(2, 3, 16, 16), torch.tensor([0, 1]))
    assert not any(m.training for m in model.modules())


def test_saliency_restores_mode_when_forward_fails() -> None:
    model = tiny_model(K, dropout=0.5).train()
    with pytest.raises(RuntimeError):
        saliency_map(model, torch.randn(2, 5, 16, 16), torch.tensor([0, 1]))  # 5 channels
    assert all(m.training for m in model.modules())


def test_saliency_under_autocast_is_float32_and_close() -> None:
    model = tiny_model(K, dropout=0.5)
    torch.manual_seed(2)
    images = torch.randn(4, 3, 16, 16)
    labels = torch.tensor([0, 1, 2, 3])
    exact = saliency_map(model, images, labels)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        approx = saliency_map(model, images, labels)
    assert approx.dtype == torch.float32 and approx.shape == exact.shape
    corr = torch.corrcoef(torch.stack((approx.flatten(), exact.flatten())))[0, 1]
    assert corr > 0.9


def test_saliency_rejects_bad_shapes_and_inference_mode() -> None:
    model = tiny_model(K, dropout=0.5)
    with pytest.raises(ValueError, match="`labels` must have shape"):
        saliency_map(model, torch.randn(2, 3, 8, 8), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="`images` must be"):
        saliency_map(model, torch.randn(3, 8, 8), torch.tensor([0, 1, 2]))
    with torch.inference_mode(), pytest.raises(ValueError, match="inference_mode"):
        saliency_map(model, torch.randn(2, 3, 8, 8), torch.tensor([0, 1]))


def test_lowres_images_is_half_size_bicubic() -> None:
    x = torch.randn(2, 3, 33, 32)
    low = lowres_images(x)
    assert low.shape == (2, 3, 16, 16)
    expected = F.interpolate(x, scale_factor=0.5, mode="bicubic", align_corners=False)
    assert torch.equal(low, expected)


# -- early head --------------------------------------------------------------------------------


@pytest.mark.parametrize(("block", "channels"), [(BasicBlock, 64), (Bottleneck, 256)])
@pytest.mark.slow
def test_early_head_shapes_and_modes(block: type, channels: int) -> None:
    model = EarlyHeadResNet(tiny_resnet(block), K)
    assert model.early_fc.in_features == channels
    x = torch.randn(2, 3, 32, 32)
    model.train()
    logits, early = model(x)
    assert logits.shape == (2, K) and early.shape == (2, K)
    model.eval()
    out = model(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, K)
    torch.testing.assert_close(out, model.resnet(x))  # eval: the plain ResNet's logits
    torch.testing.assert_close(
        model.early_logits(x),
        model.early_fc(torch.flatten(F.adaptive_avg_pool2d(_stage1(model.resnet, x), 1), 1)),
    )


def _stage1(r: ResNet, x: torch.Tensor) -> torch.Tensor:
    return r.layer1(r.maxpool(r.relu(r.bn1(r.conv1(x)))))


def test_early_logits_run_only_stem_and_first_block() -> None:
    model = EarlyHeadResNet(tiny_resnet(), K).eval()
    calls: list[str] = []
    for name in ("layer1", "layer2", "layer3", "layer4", "fc"):
        getattr(model.resnet, name).register_forward_hook(lambda *_, n=name: calls.append(n))
    model.early_logits(torch.randn(1, 3, 32, 32))
    assert calls == ["layer1"]


def test_early_saliency_is_the_gradient_of_the_early_logit() -> None:
    model = EarlyHeadResNet(tiny_resnet(), K).train()
    torch.manual_seed(10)
    images = torch.randn(3, 3, 32, 32)
    labels = torch.tensor([0, 2, 4])
    g = saliency_map(model, images, labels, forward=model.early_logits)
    ref = copy.deepcopy(model).eval()
    for i in range(3):
        x = images[i : i + 1].clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(ref.early_logits(x)[0, labels[i]], x)
        torch.testing.assert_close(g[i], grad.abs().amax(dim=1)[0], rtol=1e-5, atol=1e-7)
    assert model.training and all(p.grad is None for p in model.parameters())


def test_early_head_loss_adds_weighted_cross_entropy() -> None:
    torch.manual_seed(11)
    early = torch.randn(4, K)
    labels = torch.tensor([0, 1, 2, 3])
    main = torch.tensor(1.25)
    expected = main + 0.3 * F.cross_entropy(early, labels)
    torch.testing.assert_close(early_head_loss(main, early, labels), expected)
    soft = F.one_hot(labels, K).float()
    torch.testing.assert_close(
        early_head_loss(main, early, soft, weight=0.5), main + 0.5 * F.cross_entropy(early, labels)
    )
    with pytest.raises(ValueError, match=r"`weight` must be in \[0, inf\), got -1"):
        early_head_loss(main, early, labels, weight=-1)


def test_early_head_rejects_bad_arguments() -> None:
    with pytest.raises(TypeError, match=r"`model` must be a torchvision ResNet .*got Sequential"):
        EarlyHeadResNet(tiny_model(K, dropout=0.5), K)
    with pytest.raises(
        ValueError, match=r"`num_classes` must equal the model's logit count 5, got 7"
    ):
        EarlyHeadResNet(tiny_resnet(), 7)
