"""Torch mirrors of :mod:`dali_gridaug.geometry` for tensors on the batch's device.

The Keep stage samples on the device of the batch without host synchronisation, so it cannot
call the NumPy functions of :mod:`dali_gridaug.geometry`; these are the same formulas in torch
(same float64 arithmetic, same rounding), tested element for element against the NumPy ones.
Functions of :mod:`dali_gridaug.geometry` that use only ``+ − // .clip`` (``centred_box``,
``box_area``) are called directly on tensors instead.
"""

from __future__ import annotations

import math

import torch


def cut_sides(lam: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """CutMix box sides ``int(S·sqrt(1 − λ))`` per axis, as :func:`geometry.cut_sides`.

    Args:
        lam: ``(N,)`` float λ in [0, 1] (computed in float64).
        height: image height H in pixels.
        width: image width W in pixels.

    Returns:
        ``(side_h, side_w)``, each ``(N,)`` int64 pixels on the device of ``lam``.
    """
    cut = torch.sqrt(1.0 - lam.to(torch.float64))
    return (height * cut).to(torch.int64), (width * cut).to(torch.int64)


def grid_stripe(tile: torch.Tensor, r: float) -> torch.Tensor:
    """GridMask kept-stripe width ``l = ceil(d·r)`` (float64 ceil), as
    :func:`geometry.grid_stripe`; ``(N,)`` int64.
    """
    return torch.ceil(tile.to(torch.float64) * r).to(torch.int64)


def grid_ratio(tile: torch.Tensor, r: float) -> torch.Tensor:
    """Dropped fraction ``(d − l) / d`` of the period (DALI's ``ratio``), float32 rounded from
    float64 as :func:`geometry.sample_grid`.
    """
    d = tile.to(torch.float64)
    return ((d - grid_stripe(tile, r)) / d).to(torch.float32)


def degrees_to_radians(degrees: torch.Tensor) -> torch.Tensor:
    """Whole degrees → float32 radians (float64 product), as ``geometry.GridParams.angle``."""
    return (degrees.to(torch.float64) * (math.pi / 180)).to(torch.float32)
