"""Models and losses of a recipe: extra heads over torchvision models, model and criterion
building (the losses themselves are in :mod:`dali_gridaug.loss`).
"""

from dali_gridaug.models.build import Criterion, build_criterion, build_model
from dali_gridaug.models.heads import EarlyHeadResNet, GridMixHead

__all__ = ["Criterion", "EarlyHeadResNet", "GridMixHead", "build_criterion", "build_model"]
