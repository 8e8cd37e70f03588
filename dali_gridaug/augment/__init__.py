"""Stage 3, augment: one module per paper idea, each a frozen config with ``sample`` (host,
once per batch) and ``apply_dali``/``apply_xp`` (in the DALI graph).
"""

from dali_gridaug.augment.base import Augment
from dali_gridaug.augment.cutmix import CutMix
from dali_gridaug.augment.cutout import Cutout, RandomErasing
from dali_gridaug.augment.gridmask import GridMask
from dali_gridaug.augment.gridmix import GridMix
from dali_gridaug.augment.mixup import Mixup, MixupCutMix

#: name → config class, for the CLI and recipe files.
AUGMENTATIONS: dict[str, type[Augment]] = {
    cls.name: cls for cls in (GridMask, Cutout, RandomErasing, CutMix, GridMix, Mixup, MixupCutMix)
}

__all__ = [
    "AUGMENTATIONS",
    "Augment",
    "CutMix",
    "Cutout",
    "GridMask",
    "GridMix",
    "Mixup",
    "MixupCutMix",
    "RandomErasing",
]
