"""Which files the pipeline cannot decode, found before training: the library side of
``dali-gridaug check-data`` (the command itself is :mod:`dali_gridaug.tools.check`).

:mod:`~dali_gridaug.datacheck.probe` judges one file (sniff, header, strict DALI decode,
warnings); :mod:`~dali_gridaug.datacheck.scan` runs it over an ImageFolder root or tar shards
into a :class:`Report`. The trainer checks its validation folder with :func:`check_dataset`.
"""

from dali_gridaug.datacheck.probe import MAX_PIXELS, MIN_SIDE, Issue, sniff
from dali_gridaug.datacheck.scan import Report, check_dataset, check_shards

__all__ = ["MAX_PIXELS", "MIN_SIDE", "Issue", "Report", "check_dataset", "check_shards", "sniff"]
