"""Test oracles for the GPU path, run without a GPU (not shipped with the package).

:mod:`tests.oracles.cupy_rules` runs the CuPy kernels under a NumPy-backed stand-in that
enforces CuPy's rules (its allowed API and rule errors in :mod:`tests.oracles.cupy_api`);
:mod:`tests.oracles.paste_sim` replays the GPU ``multi_paste`` sweep on the paste arguments the
mixing augmentations emit and compares its pixels with the CPU operator's;
:mod:`tests.oracles.sync` audits per-batch torch code for host-device synchronisations on fake
CUDA tensors. What ``dali-gridaug selftest`` needs on an installed package (the GPU-graph
checks) is :mod:`dali_gridaug.testing`.
"""
