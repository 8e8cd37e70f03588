"""Stage 6, after the loader: saliency-guided Keep augmentations on the batch's device.

KeepAugment (Gong et al., 2021, https://arxiv.org/abs/2011.11778). Data flow:
``maps`` (saliency of the current model) → ``regions`` (window scores, rank eligibility,
masked choice) → ``boxes`` (clip/inside candidates, low-resolution mapping) → ``grid``
(KeepGridMask candidates) → ``keep`` (:class:`KeepStage`, masks from
:mod:`dali_gridaug.kernels`); ``keyed`` draws every random value from
``(seed, epoch, position, stream)``; ``early`` adds the early head for cheap saliency.
"""

from dali_gridaug.saliency import keyed
from dali_gridaug.saliency.boxes import (
    BOX_RULES,
    clip_boxes,
    clipped_box_scores,
    select_boxes,
    select_clipped_boxes,
    upscale_boxes,
    upscale_positions,
)
from dali_gridaug.saliency.early import EARLY_LOSS_WEIGHT, EarlyHeadResNet, early_head_loss
from dali_gridaug.saliency.grid import (
    MAX_MASK_ELEMENTS,
    GridDraws,
    KeepGridMaskConfig,
    choose_grid_draw,
    sample_grid_draws,
)
from dali_gridaug.saliency.keep import METHODS, SALIENCY_KINDS, KeepParams, KeepStage
from dali_gridaug.saliency.maps import (
    eval_mode,
    lowres_images,
    saliency_and_logits,
    saliency_map,
)
from dali_gridaug.saliency.regions import (
    cut_count,
    eligibility_weights,
    integral_image,
    masked_choice,
    quantize_saliency,
    saliency_peak,
    select_windows,
    window_scores,
)

__all__ = [
    "BOX_RULES",
    "EARLY_LOSS_WEIGHT",
    "MAX_MASK_ELEMENTS",
    "METHODS",
    "SALIENCY_KINDS",
    "EarlyHeadResNet",
    "GridDraws",
    "KeepGridMaskConfig",
    "KeepParams",
    "KeepStage",
    "choose_grid_draw",
    "clip_boxes",
    "clipped_box_scores",
    "cut_count",
    "early_head_loss",
    "eligibility_weights",
    "eval_mode",
    "integral_image",
    "keyed",
    "lowres_images",
    "masked_choice",
    "quantize_saliency",
    "saliency_and_logits",
    "saliency_map",
    "saliency_peak",
    "sample_grid_draws",
    "select_boxes",
    "select_clipped_boxes",
    "select_windows",
    "upscale_boxes",
    "upscale_positions",
    "window_scores",
]
