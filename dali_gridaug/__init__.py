"""dali-gridaug: NVIDIA DALI data loading with GridMask, Cutout, CutMix and GridMix.

Data flow (module names are the stages)::

    reader  → decode → augment → labels → loader → saliency (Keep) → loss
    (read)   (crop,    (in the   (soft &   (Batch)  (post-loader,     (soft CE,
              flip,     DALI      patch              model-driven)     GridMix)
              norm)     graph)    labels)

This module is the library's face: the loader, its batch, the augmentation configs, the
sources, the Keep stage and the losses. ``import dali_gridaug`` loads neither the tools
(``dali_gridaug.tools``: the sample dataset, check-data; they import PIL) nor the GPU checks
(``dali_gridaug.testing``); import those by their own names.
"""

from dali_gridaug.augment import (
    AUGMENTATIONS,
    CutMix,
    Cutout,
    GridMask,
    GridMix,
    RandomErasing,
)
from dali_gridaug.augment.mixup import Mixup, MixupCutMix
from dali_gridaug.batch import Batch
from dali_gridaug.config import LoaderConfig
from dali_gridaug.constants import IMAGENET_MEAN, IMAGENET_STD
from dali_gridaug.loader import DaliLoader, create_loader
from dali_gridaug.loss import (
    GridMixLoss,
    SoftTargetCrossEntropy,
    early_head_loss,
    soft_target_cross_entropy,
)
from dali_gridaug.presets import ColorJitter, Lighting, Preset
from dali_gridaug.reader import FileSource, TarSource, file_list, image_folder, tar_shards
from dali_gridaug.saliency import KeepStage

__version__ = "0.1.0"

__all__ = [
    "AUGMENTATIONS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Batch",
    "ColorJitter",
    "CutMix",
    "Cutout",
    "DaliLoader",
    "FileSource",
    "GridMask",
    "GridMix",
    "GridMixLoss",
    "KeepStage",
    "Lighting",
    "LoaderConfig",
    "Mixup",
    "MixupCutMix",
    "Preset",
    "RandomErasing",
    "SoftTargetCrossEntropy",
    "TarSource",
    "create_loader",
    "early_head_loss",
    "file_list",
    "image_folder",
    "soft_target_cross_entropy",
    "tar_shards",
]
