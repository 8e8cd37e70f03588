"""Stage 7, loss: soft-target cross-entropy and GridMix's global + local loss.

GridMix (SPEC §GridMix 5): ``L = CE_soft(f_g(x̃), ỹ) + γ · Σ_ij CE(f_l(x̃)_ij, y_p,ij)``,
averaged over the batch — a **sum** over the n² cells, as the paper's eq. 4.
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
