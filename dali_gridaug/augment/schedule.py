"""Epoch schedules: pure functions of the epoch number."""

from __future__ import annotations


def linear_ramp(p: float, epoch: int, ramp_epochs: int) -> float:
    """``p · min(1, epoch / ramp_epochs)``; a constant ``p`` when ``ramp_epochs`` is 0.

    GridMask's schedule (official code): epoch 0 applies nothing, epoch ``ramp_epochs`` and
    later ``p``.
    """
    if ramp_epochs <= 0:
        return p
    return p * min(1.0, max(epoch, 0) / ramp_epochs)
