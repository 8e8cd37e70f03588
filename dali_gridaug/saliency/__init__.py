"""Stage 6, after the loader: saliency-guided Keep augmentations on the batch's device.

KeepAugment (Gong et al., 2021, https://arxiv.org/abs/2011.11778). Data flow:
``maps`` (saliency of the current model) → ``regions`` (window scores, rank eligibility,
masked choice) → ``boxes`` (clip/inside candidates, low-resolution mapping) → ``grid``
(KeepGridMask candidates from a :class:`~dali_gridaug.augment.GridMask` config) → ``keep``
(:class:`KeepStage`, masks from :mod:`dali_gridaug.kernels`); ``keyed`` draws every random
value from ``(seed, epoch, position, stream)``. The early head for cheap saliency is
:class:`dali_gridaug.models.heads.EarlyHeadResNet`, its auxiliary loss
:func:`dali_gridaug.loss.early_head_loss`.

This package exports what a user passes or reads: the stage, the parameters it returns, and
the values its arguments take. The building blocks are imported from their submodules.
"""

from dali_gridaug.saliency.boxes import BOX_RULES
from dali_gridaug.saliency.grid import MAX_MASK_ELEMENTS
from dali_gridaug.saliency.keep import METHODS, SALIENCY_KINDS, KeepParams, KeepStage

__all__ = [
    "BOX_RULES",
    "MAX_MASK_ELEMENTS",
    "METHODS",
    "SALIENCY_KINDS",
    "KeepParams",
    "KeepStage",
]
