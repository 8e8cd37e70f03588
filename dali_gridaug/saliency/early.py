"""The early head for Keep's cheap saliency; it lives in :mod:`dali_gridaug.models` (the head)
and :mod:`dali_gridaug.loss` (its auxiliary loss). Kept importable from here for
``dali_gridaug.saliency``.
"""

from dali_gridaug.loss import EARLY_LOSS_WEIGHT, early_head_loss
from dali_gridaug.models.heads import EarlyHeadResNet

__all__ = ["EARLY_LOSS_WEIGHT", "EarlyHeadResNet", "early_head_loss"]
