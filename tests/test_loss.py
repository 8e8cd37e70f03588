"""Losses on hand-computed cases; GridMixHead trains on the sample data (CPU)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torchvision

from dali_gridaug import GridMix, create_loader
from dali_gridaug.loss import GridMixLoss, SoftTargetCrossEntropy, soft_target_cross_entropy
from dali_gridaug.models import GridMixHead


def test_soft_target_ce_by_hand() -> None:
    logits = torch.tensor([[0.0, math.log(3.0)]])  # softmax = (1/4, 3/4)
    target = torch.tensor([[0.5, 0.5]])
    expected = -(0.5 * math.log(0.25) + 0.5 * math.log(0.75))
    assert soft_target_cross_entropy(logits, target).item() == pytest.approx(expected, rel=1e-6)
    hard = torch.tensor([1])
    assert SoftTargetCrossEntropy()(logits, hard).item() == pytest.approx(-math.log(0.75), rel=1e-6)


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


def test_gridmix_loss_rejects_mismatched_cells() -> None:
    with pytest.raises(ValueError, match="cells"):
        GridMixLoss()(
            torch.zeros(1, 2),
            torch.zeros(1, 2, 3, 3),
            torch.ones(1, 2) / 2,
            torch.zeros(1, 4, 4).long(),
        )
    with pytest.raises(ValueError, match=r"`gamma` must be in \[0"):
        GridMixLoss(-1)


def test_gridmix_head_modes() -> None:
    head = GridMixHead(torchvision.models.resnet18(), num_classes=10, n=4)
    g, loc = head(torch.randn(2, 3, 64, 64))
    assert g.shape == (2, 10) and loc.shape == (2, 10, 4, 4)
    head.eval()
    assert head(torch.randn(2, 3, 64, 64)).shape == (2, 10)


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
