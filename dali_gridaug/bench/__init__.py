"""Benchmarks (``dali-gridaug bench``) and the machine self-test (``dali-gridaug selftest``).

Suites register with :func:`dali_gridaug.bench.core.suite`; the runner times every selected
configuration in interleaved rounds and writes one JSON (machine stamp, dataset, timings,
targets from ``targets.toml``) and one PNG per run.
"""
