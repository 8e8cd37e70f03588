"""Benchmarks (``dali-gridaug bench``) and the machine self-test (``dali-gridaug selftest``).

Suites register with :func:`dali_gridaug.bench.registry.suite`; the runner
(:mod:`dali_gridaug.bench.core`) times every selected configuration in interleaved rounds and
writes one JSON (machine stamp, dataset, timings, targets from ``targets.toml``) and one PNG
per run.
"""
