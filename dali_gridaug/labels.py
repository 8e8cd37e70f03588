"""Stage 4, labels: targets computed from the parameters the graph actually applied.

Pure torch functions on the image device; all shapes have a leading batch dimension B.
"""

from __future__ import annotations

import torch


def one_hot(labels: torch.Tensor, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
    """``(B,)`` int → ``(B, K)`` float32, timm-style smoothing: off = ε/K, on = 1 − ε + ε/K."""
    off = smoothing / num_classes  # timm's arithmetic, bit for bit
    out = torch.full((labels.shape[0], num_classes), off, dtype=torch.float32, device=labels.device)
    return out.scatter_(1, labels.long()[:, None], 1.0 - smoothing + off)


def smooth_target(target: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    """Label smoothing, the one rule: ``(1 − ε)·t + ε/K`` (timm's ``mixup_target``
    with smoothing equals this for every λ up to float rounding; :func:`one_hot` applies the
    same rule with timm's rounding).

    Args:
        target: ``(B,)`` int hard labels or ``(B, K)`` float soft targets.
        num_classes: K.
        smoothing: ε in [0, 1); 0 returns ``target`` itself (hard targets stay hard).

    Returns:
        ``(B, K)`` float32 when ε > 0.
    """
    if smoothing == 0:
        return target
    if target.ndim == 1:
        return one_hot(target, num_classes, smoothing)
    return target.to(torch.float32) * (1.0 - smoothing) + smoothing / num_classes


def mix_target(
    labels: torch.Tensor,
    partner: torch.Tensor,
    lam: torch.Tensor,
    num_classes: int,
    smoothing: float = 0.0,
) -> torch.Tensor:
    """``λ·onehot(y) + (1 − λ)·onehot(y[partner])`` — ``(B, K)`` float32, rows sum to 1.

    Args:
        labels: ``(B,)`` hard labels.
        partner: ``(B,)`` batch position of each sample's partner.
        lam: ``(B,)`` fraction of the sample's own pixels.
        num_classes: K.
        smoothing: label smoothing ε applied to both one-hots.
    """
    lam = lam.to(torch.float32)[:, None]
    own = one_hot(labels, num_classes, smoothing)
    other = one_hot(labels[partner.long()], num_classes, smoothing)
    return lam * own + (1.0 - lam) * other


def patch_labels(labels: torch.Tensor, partner: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """GridMix per-cell labels ``(B, n, n)`` int64: ``y`` where the cell is the sample's own
    (``cells`` = 1), else ``y[partner]``. Their mean one-hot over cells equals the soft target.
    """
    own = labels.long()[:, None, None]
    other = labels.long()[partner.long()][:, None, None]
    return torch.where(cells.bool(), own, other)
