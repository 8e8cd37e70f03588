"""Checks of the GPU path that run on a machine without a GPU.

:func:`validate_all` builds every GPU DALI graph the library can build (:func:`graph_cases`)
and runs DALI's CPU-side checks on each (five levels, :data:`LEVELS`; see
:mod:`dali_gridaug.gpucheck.graphs`); :func:`run_controls` runs graphs with planted errors
(:data:`CONTROLS`) that those checks must catch (:func:`caught`).
:mod:`dali_gridaug.gpucheck.paste_sim` replays the GPU ``multi_paste`` kernel on the paste
arguments the mixing augmentations emit and compares its pixels with the CPU operator's.
:mod:`dali_gridaug.gpucheck.cupy_rules` runs the CuPy kernels under a NumPy-backed stand-in that
enforces CuPy's rules (its allowed API and rule errors in ``cupy_api``), and
:mod:`dali_gridaug.gpucheck.sync` audits per-batch torch code for host-device synchronisations
on fake CUDA tensors.
"""

from dali_gridaug.gpucheck.cases import GraphCase, graph_cases
from dali_gridaug.gpucheck.controls import CONTROLS, Control, caught, run_controls
from dali_gridaug.gpucheck.graphs import LEVELS, GraphResult, validate, validate_all

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
