"""Losses on hand-computed cases; a recipe's criterion gives the same loss as before the
models package; label smoothing changes soft-target losses; the heads and GridMixHead training
on the sample data (CPU)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision

from dali_gridaug import GridMix, create_loader
from dali_gridaug.loss import GridMixLoss, SoftTargetCrossEntropy, soft_target_cross_entropy
from dali_gridaug.models import EarlyHeadResNet, GridMixHead
from dali_gridaug.recipes import build_criterion, build_model, load_recipe


def test_soft_target_ce_by_hand() -> None:
    logits = torch.tensor([[0.0, math.log(3.0)]])  # softmax = (1/4, 3/4)
    target = torch.tensor([[0.5, 0.5]])
    expected = -(0.5 * math.log(0.25) + 0.5 * math.log(0.75))
    assert soft_target_cross_entropy(logits, target).item() == pytest.approx(expected, rel=1e-6)
    hard = torch.tensor([1])
    assert SoftTargetCrossEntropy()(logits, hard).item() == pytest.approx(-math.log(0.75), rel=1e-6)


def test_soft_target_cross_entropy_equals_timms() -> None:
    timm_loss = pytest.importorskip("timm.loss")
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(8, 10, generator=gen, requires_grad=True)
    target = torch.softmax(3 * torch.randn(8, 10, generator=gen), dim=-1)  # rows sum to 1
    ours = SoftTargetCrossEntropy()(logits, target)
    theirs = timm_loss.SoftTargetCrossEntropy()(logits, target)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=0)
    (g_ours,) = torch.autograd.grad(ours, logits)
    (g_theirs,) = torch.autograd.grad(theirs, logits)
    torch.testing.assert_close(g_ours, g_theirs, rtol=1e-6, atol=1e-8)
    # the package's face exports the module form
    import dali_gridaug

    assert dali_gridaug.SoftTargetCrossEntropy is SoftTargetCrossEntropy


def test_gridmix_loss_is_global_plus_gamma_sum_over_cells() -> None:
    # B=1, K=2, n=2; local logits chosen so each cell's softmax is known
    g = torch.tensor([[0.0, 0.0]])  # global softmax (1/2, 1/2)
    target = torch.tensor([[0.75, 0.25]])
    local = torch.zeros(1, 2, 2, 2)
    local[0, 1, 0, 0] = math.log(3.0)  # cell (0,0): p(class 1) = 3/4
    patch = torch.tensor([[[1, 0], [0, 0]]])
    cells = -math.log(0.75) + 3 * -math.log(0.5)
    expected = -math.log(0.5) + 0.15 * cells  # a SUM over cells, as the paper's eq. 4
    assert GridMixLoss(0.15)(g, local, target, patch).item() == pytest.approx(expected, rel=1e-6)
    # batch average: two copies give the same value
    two = GridMixLoss(0.15)(
        g.repeat(2, 1), local.repeat(2, 1, 1, 1), target.repeat(2, 1), patch.repeat(2, 1, 1)
    )
    assert two.item() == pytest.approx(expected, rel=1e-6)
    assert GridMixLoss().gamma == 0.15  # the paper's γ is the default
    assert GridMixLoss()(g, local, target, patch).item() == pytest.approx(expected, rel=1e-6)


def test_gridmix_loss_rejects_mismatched_cells() -> None:
    with pytest.raises(
        ValueError, match=r"^local logits cells \(3, 3\) do not match patch labels \(4, 4\)$"
    ):
        GridMixLoss()(
            torch.zeros(1, 2),
            torch.zeros(1, 2, 3, 3),
            torch.ones(1, 2) / 2,
            torch.zeros(1, 4, 4).long(),
        )
    with pytest.raises(ValueError, match=r"`gamma` must be in \[0"):
        GridMixLoss(-1)


@pytest.mark.slow
def test_gridmix_head_modes() -> None:
    head = GridMixHead(torchvision.models.resnet18(), num_classes=10, n=4)
    g, loc = head(torch.randn(2, 3, 64, 64))
    assert g.shape == (2, 10) and loc.shape == (2, 10, 4, 4)
    head.eval()
    assert head(torch.randn(2, 3, 64, 64)).shape == (2, 10)


@pytest.mark.slow
def test_gridmix_head_trains_on_sample_data(sample_data: dict[str, Path]) -> None:
    torch.manual_seed(0)
    loader = create_loader(
        sample_data["train"],
        batch_size=20,
        image_size=64,
        augment=[GridMix(n=4, p=0.8)],
        device="cpu",
        seed=0,
    )
    head = GridMixHead(torchvision.models.resnet18(num_classes=10), num_classes=10, n=4)
    opt = torch.optim.Adam(head.parameters(), lr=1e-3)
    loss_fn = GridMixLoss(0.15)
    losses = []
    for epoch in range(4):
        loader.set_epoch(epoch)
        for batch in loader:
            g, loc = head(batch.images)
            loss = loss_fn(g, loc, batch.target, batch.patch_labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.8 * first, losses


# -- a recipe's criterion: the same values as train.Criterion before the models package -------

B, K = 4, 5
LOGITS = (torch.arange(B * K).reshape(B, K).float() * 0.7).sin() * 3
LABELS = torch.tensor([0, 3, 1, 4])
SOFT = torch.zeros(B, K)
SOFT[torch.arange(B), LABELS] = 0.6
SOFT[torch.arange(B), (LABELS + 1) % K] += 0.4
LOCAL = (torch.arange(B * K * 4).reshape(B, K, 2, 2).float() * 0.3).cos() * 2
PATCH = torch.tensor([[[0, 1], [1, 0]], [[3, 3], [4, 4]], [[1, 1], [1, 2]], [[4, 0], [0, 4]]])
EARLY = (torch.arange(B * K).reshape(B, K).float() * 1.3).cos()


class FakeBatch:  # the two Batch fields a criterion reads
    def __init__(self, target: torch.Tensor) -> None:
        self.target, self.patch_labels = target, PATCH


def smoothed(labels: torch.Tensor, eps: float) -> torch.Tensor:
    """The loader's target with smoothing ε: (1 − ε)·onehot + ε/K."""
    return (1 - eps) * F.one_hot(labels, K).float() + eps / K


# (recipe, overrides, model output, target, loss of main's train.Criterion at d93bae5)
BEFORE = [
    ("cifar10_cutout", {}, LOGITS, LABELS, 1.7829490900039673),
    # before: CE(label_smoothing=0.1) on hard labels; now the loader smooths the target
    ("cifar10_cutout", {"loss.label_smoothing": 0.1}, LOGITS, smoothed(LABELS, 0.1), 1.8496271),
    ("imagenet_cutmix", {}, LOGITS, SOFT, 1.9001100063323975),
    ("imagenet_gridmix", {}, (LOGITS, LOCAL), SOFT, 3.126870632171631),
    ("imagenet_keepautoaugment", {"keep.saliency": "early"}, (LOGITS, EARLY), SOFT, 2.3905518),
    (
        "imagenet_keepautoaugment",
        {"keep.saliency": "early", "keep.early_weight": 0.5},
        (LOGITS, EARLY),
        SOFT,
        2.717513084411621,
    ),
]


@pytest.mark.parametrize(("name", "over", "output", "target", "expected"), BEFORE)
def test_criterion_same_as_before(
    name: str, over: dict, output: object, target: torch.Tensor, expected: float
) -> None:
    recipe = load_recipe(name).override(over)
    loss = build_criterion(recipe)(output, FakeBatch(target))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_criterion_does_not_smooth_a_second_time() -> None:
    recipe = load_recipe("cifar10_cutout").override({"loss.label_smoothing": 0.1})
    assert recipe.loader_config().label_smoothing == 0.1  # the loader smooths
    plain = F.cross_entropy(LOGITS, LABELS)
    assert build_criterion(recipe)(LOGITS, FakeBatch(LABELS)).item() == pytest.approx(plain.item())


def test_label_smoothing_changes_the_soft_target_loss() -> None:
    recipe = load_recipe("imagenet_cutmix")
    criterion = build_criterion(recipe)
    eps = 0.1
    plain = criterion(LOGITS, FakeBatch(SOFT)).item()
    smooth = criterion(LOGITS, FakeBatch((1 - eps) * SOFT + eps / K)).item()
    assert smooth != pytest.approx(plain, rel=1e-3)
    by_hand = -((1 - eps) * SOFT + eps / K) * F.log_softmax(LOGITS, 1)
    assert smooth == pytest.approx(by_hand.sum(1).mean().item(), rel=1e-6)


def test_recipe_label_smoothing_reaches_mixed_targets(sample_data: dict[str, Path]) -> None:
    recipe = load_recipe("imagenet_cutmix").override(
        {"loss.label_smoothing": 0.1, "data.image_size": 64, "data.batch_size": 8}
    )
    config = dataclasses.replace(
        recipe.loader_config(), preset="imagenet", color_jitter=None, lighting=None
    )
    losses = []
    for eps in (0.0, 0.1):
        loader = create_loader(
            sample_data["train"], config, device="cpu", seed=0, label_smoothing=eps
        )
        batch = next(iter(loader))
        k = batch.target.shape[1]
        assert bool((batch.target.min(1).values >= eps / k - 1e-6).all())  # smoothed, soft too
        logits = torch.linspace(-2, 2, 8 * k).reshape(8, k)
        losses.append(build_criterion(recipe)(logits, batch))
    assert losses[0].item() != pytest.approx(losses[1].item(), rel=1e-4)


# -- models -----------------------------------------------------------------------------------


def test_build_model_follows_the_recipe() -> None:
    demo = load_recipe("demo")
    model = build_model(demo, 7)
    assert isinstance(model, torchvision.models.ResNet) and model.fc.out_features == 7
    assert model.conv1.kernel_size == (7, 7)
    cifar = build_model(load_recipe("cifar10_cutout"), 10)
    assert cifar.conv1.kernel_size == (3, 3) and cifar.conv1.stride == (1, 1)
    assert isinstance(cifar.maxpool, torch.nn.Identity)
    gridmix = build_model(load_recipe("imagenet_gridmix").override({"model.name": "resnet18"}), 3)
    assert isinstance(gridmix, GridMixHead) and gridmix.n == 4
    early = load_recipe("imagenet_keepautoaugment").override(
        {"model.name": "resnet18", "keep.saliency": "early"}
    )
    assert isinstance(build_model(early, 3), EarlyHeadResNet)


@pytest.mark.slow
def test_heads_use_the_models_own_forward() -> None:
    from torchvision.models.feature_extraction import create_feature_extractor

    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    resnet = torchvision.models.resnet18(num_classes=6)
    head = GridMixHead(resnet, 6, n=2).train()
    logits, local = head(x)
    # train mode (BN on batch statistics): the global logits are the wrapped model's own
    # output, and the local head reads layer4's output
    torch.testing.assert_close(logits, resnet(x), rtol=1e-5, atol=1e-6)
    feat = create_feature_extractor(resnet, {"layer4": "f"})(x)["f"]
    torch.testing.assert_close(local, head.local(feat), rtol=1e-5, atol=1e-6)
    # the early head's truncated pass equals the head on layer1 of the full forward
    early = EarlyHeadResNet(torchvision.models.resnet18(num_classes=6)).train()
    _, early_logits = early(x)
    torch.testing.assert_close(early.early_logits(x), early_logits, rtol=1e-5, atol=1e-6)
    # after a module swap (as SyncBatchNorm conversion does) the truncated pass follows it
    bn1 = torch.nn.BatchNorm2d(64)
    torch.nn.init.uniform_(bn1.weight, 1.5, 2.5)
    early.resnet.bn1 = bn1
    _, early_logits = early(x)
    torch.testing.assert_close(early.early_logits(x), early_logits, rtol=1e-5, atol=1e-6)
    assert set(early.state_dict()) == {f"resnet.{k}" for k in early.resnet.state_dict()} | {
        "early_fc.weight",
        "early_fc.bias",
    }


@pytest.mark.slow
def test_heads_survive_copy_and_pickle() -> None:
    import copy
    import io

    model = EarlyHeadResNet(torchvision.models.resnet18(num_classes=4)).eval()
    x = torch.randn(1, 3, 32, 32)
    model.early_logits(x)  # builds the traced stem
    clone = copy.deepcopy(model)
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    for other in (clone, loaded):
        with torch.no_grad():
            other.early_fc.weight.add_(1.0)  # the copy's head, not the original's
        assert not torch.allclose(other.early_logits(x), model.early_logits(x))
        torch.testing.assert_close(other.eval()(x), model(x))  # the ResNet itself: copied
