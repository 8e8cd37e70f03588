"""A straightforward per-batch torch GridMix (no official code exists; SPEC §GridMix): one
``randperm`` partner, an ``(B, n, n)`` Bernoulli(p) cell mask expanded to pixels with
``bucketize`` on the cell boundaries ``floor(i·H/n)``, ``torch.where`` to mix, λ = mean of the
cells, and the soft and per-cell targets.
"""

from __future__ import annotations

import torch


def gridmix_torch(
    x: torch.Tensor,
    target: torch.Tensor,
    *,
    n: int = 4,
    p: float = 0.8,
    num_classes: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mix an NCHW batch cell by cell.

    Returns:
        ``(images, soft_target (B, K), patch_labels (B, n, n))``.
    """
    b, _, h, w = x.shape
    dev = x.device
    cells = torch.rand((b, n, n), generator=generator, device=dev) < p  # True: cell of A
    perm = torch.randperm(b, generator=generator, device=dev)

    def cell_of(size: int) -> torch.Tensor:
        edges = (torch.arange(1, n, device=dev) * size) // n
        return torch.bucketize(torch.arange(size, device=dev), edges, right=True)

    keep = cells[:, cell_of(h)[:, None], cell_of(w)[None, :]]  # (B, H, W)
    out = torch.where(keep[:, None], x, x[perm])
    lam = cells.flatten(1).float().mean(1)
    onehot = torch.nn.functional.one_hot(target, num_classes).float()
    soft = lam[:, None] * onehot + (1 - lam[:, None]) * onehot[perm]
    patch = torch.where(cells, target[:, None, None], target[perm][:, None, None])
    return out, soft, patch
