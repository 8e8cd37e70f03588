"""Registered benchmark suites; :func:`load_suites` imports them all (registration order is
the run order: loaders and references, sweeps, the augmentation op, the Keep stage)."""

from __future__ import annotations

import importlib

from benchmarks.registry import ALL_SUITES, Suite

_MODULES = ("benchmarks.suites.loaders", "benchmarks.suites.ops", "benchmarks.suites.keep")


def load_suites() -> dict[str, Suite]:
    """Import every suite module (and ``benchmarks.saliency_stage`` when it exists, so suites it
    registers with ``@benchmark`` run too); returns the registry."""
    for name in _MODULES:
        importlib.import_module(name)
    from benchmarks.suites.keep import saliency_stage

    module, _ = saliency_stage()
    if module is not None and any(s.cls.__module__ == module.__name__ for s in ALL_SUITES.values()):
        ALL_SUITES.pop("keep-stage", None)  # it registered its own suites: no adapter needed
    return ALL_SUITES
