"""Test apparatus shipped with the package (as ``torch.testing``): not a stage of the data path.

What ``dali-gridaug selftest`` runs on an installed package, on any machine:
:func:`validate_all` builds every GPU DALI graph the library can build (:func:`graph_cases`)
and runs DALI's CPU-side checks on each (five levels, :data:`LEVELS`; see
:mod:`dali_gridaug.testing.graphs`); :func:`run_controls` runs graphs with planted errors
(:data:`CONTROLS`) that those checks must catch (:func:`caught`). The library never imports
this package. The test oracles of the GPU path (the CuPy-rules stand-in, the replay of the GPU
``multi_paste`` sweep, the host-sync audit) live under ``tests/oracles/`` in the source
checkout.
"""

from dali_gridaug.testing.cases import GraphCase, graph_cases
from dali_gridaug.testing.controls import CONTROLS, Control, caught, run_controls
from dali_gridaug.testing.graphs import LEVELS, GraphResult, validate, validate_all

__all__ = [
    "CONTROLS",
    "LEVELS",
    "Control",
    "GraphCase",
    "GraphResult",
    "caught",
    "graph_cases",
    "run_controls",
    "validate",
    "validate_all",
]
