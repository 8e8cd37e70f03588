"""Stage 7, loss: soft-target cross-entropy, GridMix's global + local loss, the early head's
auxiliary loss.

GridMix (Baek, Bang & Shim, 2021, eq. 4): ``L = CE_soft(f_g(x̃), ỹ) + γ · Σ_ij
CE(f_l(x̃)_ij, y_p,ij)``, averaged over the batch — a **sum** over the n² cells.
KeepAugment's early head (Gong et al., 2021, §4 "Settings"): the main loss plus 0.3 times the
early head's cross-entropy, as Inception's auxiliary heads.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dali_gridaug._validate import check_range


def soft_target_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``−Σ_k target_k · log softmax(logits)_k``.

    Args:
        logits: ``(B, K)``.
        target: ``(B, K)`` soft labels (rows sum to 1), or ``(B,)`` hard labels.
    """
    if target.ndim == 1:
        return F.cross_entropy(logits, target.long())
    return torch.sum(-target * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()


class SoftTargetCrossEntropy(nn.Module):
    """Module form of :func:`soft_target_cross_entropy` (accepts hard labels too)."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return soft_target_cross_entropy(logits, target)


class GridMixLoss(nn.Module):
    """GridMix loss: soft-target CE on the global logits plus γ times the sum over cells of
    the per-cell CE against the patch labels, averaged over the batch.

    Args:
        gamma: local loss weight γ ≥ 0 (paper: 0.15).
    """

    def __init__(self, gamma: float = 0.15) -> None:
        super().__init__()
        check_range("gamma", gamma, 0)
        self.gamma = float(gamma)

    def forward(
        self,
        global_logits: torch.Tensor,
        local_logits: torch.Tensor,
        target: torch.Tensor,
        patch_labels: torch.Tensor,
    ) -> torch.Tensor:
        """Loss value (a scalar).

        Args:
            global_logits: ``(B, K)``.
            local_logits: ``(B, K, n, n)`` per-cell logits.
            target: ``(B, K)`` soft labels ỹ.
            patch_labels: ``(B, n, n)`` int64 per-cell labels y_p.
        """
        if local_logits.shape[-2:] != patch_labels.shape[-2:]:
            raise ValueError(
                f"local logits cells {tuple(local_logits.shape[-2:])} do not match patch labels "
                f"{tuple(patch_labels.shape[-2:])}"
            )
        local = F.cross_entropy(local_logits.float(), patch_labels.long(), reduction="none")
        return (
            soft_target_cross_entropy(global_logits, target) + self.gamma * local.sum((1, 2)).mean()
        )


EARLY_LOSS_WEIGHT = 0.3
"""Weight of the early head's auxiliary loss in the KeepAugment paper."""


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
    return main_loss + weight * F.cross_entropy(early_logits.float(), target)
