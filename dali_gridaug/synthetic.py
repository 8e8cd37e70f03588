"""Moved to :mod:`dali_gridaug.tools.synthetic`; this alias keeps old imports working.

New code imports ``from dali_gridaug import make_sample_dataset`` or from
:mod:`dali_gridaug.tools.synthetic`.
"""

from dali_gridaug.tools.synthetic import class_names, make_sample_dataset, render

__all__ = ["class_names", "make_sample_dataset", "render"]
