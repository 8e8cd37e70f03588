"""Test oracles: the papers' official algorithms (one home: :mod:`dali_gridaug.bench.reference`,
also timed by the benchmarks)."""

from dali_gridaug.bench.reference import cutmix_official_lam, gridmask_official

__all__ = ["cutmix_official_lam", "gridmask_official"]
