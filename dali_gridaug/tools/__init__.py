"""Application tools around the loader: ``check-data``, ``demo``, ``preview``, the PNG grid
drawer and the sample dataset.

Each command module exposes ``main(argv) -> int`` for the ``dali-gridaug`` dispatcher; it writes
only to its ``--out``/``--report``/``--list`` paths or to the user cache dir
(:func:`dali_gridaug.tools.common.cache_dir`), never to the current folder.
"""

from dali_gridaug.tools.synthetic import make_sample_dataset

__all__ = ["make_sample_dataset"]
