"""Stage 3, augment: one module per paper idea, each a frozen config declaring its parameter
``schema``, drawing them with ``sample`` (host, once per batch, from its generator and the
batch's :class:`SampleContext`) and applying them in the DALI graph: a visibility mask
(:class:`MaskAugment`) or a paste plus a label update (:class:`MixAugment`); ``apply_xp`` is
the ``xp`` kernel of the ``"kernel"`` backend.
"""

from dali_gridaug.augment.base import (
    Augment,
    LabelUpdate,
    MaskAugment,
    MixAugment,
    ParamSpec,
    SampleContext,
)
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
    "LabelUpdate",
    "MaskAugment",
    "MixAugment",
    "ParamSpec",
    "Mixup",
    "MixupCutMix",
    "RandomErasing",
    "SampleContext",
]
