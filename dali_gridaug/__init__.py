"""dali-gridaug: NVIDIA DALI data loading with GridMask, Cutout, CutMix and GridMix.

Data flow (module names are the stages)::

    reader  → decode → augment → labels → loader → saliency (Keep) → loss
    (read)   (crop,    (in the   (soft &   (Batch)  (post-loader,     (soft CE,
              flip,     DALI      patch              model-driven)     GridMix)
              norm)     graph)    labels)
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
from dali_gridaug.constants import IMAGENET_MEAN, IMAGENET_STD
from dali_gridaug.loader import DaliLoader, create_loader
from dali_gridaug.presets import ColorJitter, Lighting, Preset
from dali_gridaug.reader import FileSource, TarSource, file_list, image_folder, tar_shards
from dali_gridaug.saliency import KeepStage
from dali_gridaug.tools.synthetic import make_sample_dataset

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
    "KeepStage",
    "Lighting",
    "Mixup",
    "MixupCutMix",
    "Preset",
    "RandomErasing",
    "TarSource",
    "create_loader",
    "file_list",
    "image_folder",
    "make_sample_dataset",
    "tar_shards",
]
