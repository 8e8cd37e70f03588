"""Models and losses over torchvision: extra heads, a classifier builder and the criterion (the
losses themselves are in :mod:`dali_gridaug.loss`; a recipe's model and criterion are built
by :mod:`dali_gridaug.recipes.build`).
"""

from dali_gridaug.models.build import Criterion, classifier
from dali_gridaug.models.heads import EarlyHeadResNet, GridMixHead

__all__ = ["Criterion", "EarlyHeadResNet", "GridMixHead", "classifier"]
