"""The benchmark runner.

``@suite(name, grid)`` (:mod:`dali_gridaug.bench.registry`, whose names are importable from
here too) registers a :class:`Benchmark` subclass; ``grid(settings)`` names the
suite's configurations (config name → constructor keyword arguments). The runner times every
selected configuration in *interleaved rounds*: each round sets every configuration up, runs
``warmup`` untimed runs (which also drain the loaders' prefetch queues, so the clock sees the
steady state), ``runs`` timed runs, and tears it down before the next one starts; the order
rotates from round to round. Drifting background load thus hits all configurations alike, and
a ratio between two configurations is the median over rounds of the per-round ratio.

The suite modules import the registry, not this module: :func:`load_suites` imports them.
"""

from __future__ import annotations

import fnmatch
import gc
import time
import traceback
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from dali_gridaug.bench.registry import (
    SUITES,
    Benchmark,
    Settings,
    Suite,
    proc_cpu_seconds,
    suite,
    usable_cpus,
)


def load_suites() -> dict[str, Suite]:
    """Import the suite modules (registering them) and return the registry."""
    from dali_gridaug.bench.suites import keep, loaders, ops, stages, timm_recipe  # noqa: F401

    return SUITES


def selected(patterns: Iterable[str], excludes: Iterable[str], name: str) -> bool:
    """Shell-style match of ``suite`` or ``suite/config`` (``*``, ``?``; brackets literal)."""
    suite_name = name.split("/", 1)[0]

    def hit(pats: Iterable[str]) -> bool:
        pats = ["".join({"[": "[[]", "]": "[]]"}.get(c, c) for c in p) for p in pats]
        return any(fnmatch.fnmatchcase(n, p) for p in pats for n in (suite_name, name))

    return hit(patterns) and not hit(excludes)


def plan(settings: Settings, patterns: Iterable[str] = ("*",), excludes: Iterable[str] = ()):
    """The selected ``(full name, suite, kwargs)`` triples, in registry order."""
    patterns, excludes = list(patterns), list(excludes)
    return [
        (f"{s.name}/{c}", s, params)
        for s in load_suites().values()
        for c, params in s.grid(settings).items()
        if selected(patterns, excludes, f"{s.name}/{c}")
    ]


def measure(bench: Benchmark, runs: int, warmup: int) -> dict[str, Any]:
    """Set up, ``warmup`` untimed runs, ``runs`` timed runs (wall and CPU seconds), tear down."""
    t0 = time.perf_counter()
    bench.setup()
    try:
        setup_s = time.perf_counter() - t0
        for _ in range(warmup):
            bench.run()
            bench.sync()
        times, cpu = [], []
        for _ in range(runs):
            c0, start = bench.cpu_seconds(), time.perf_counter()
            bench.run()
            bench.sync()
            times.append(time.perf_counter() - start)
            cpu.append(bench.cpu_seconds() - c0)
        return {"times_s": times, "cpu_s": cpu, "setup_s": setup_s, **bench.describe()}
    finally:
        bench.teardown()


def summarize(entry: dict[str, Any]) -> None:
    """Add median/min/max/quartiles, throughput and per-round throughput to ``entry``."""
    n = entry["images_per_run"]
    t = np.asarray(entry["times_s"], np.float64)
    median = float(np.median(t))
    entry.update(
        images_per_s=n / median,
        median_s=median,
        min_s=float(t.min()),
        max_s=float(t.max()),
        q1_s=float(np.percentile(t, 25)),
        q3_s=float(np.percentile(t, 75)),
        cpu_s_per_image=float(np.median(entry["cpu_s"])) / n,
        round_images_per_s=[n * len(r) / sum(r) for r in entry["round_times_s"]],
    )


def run(
    settings: Settings,
    patterns: Iterable[str] = ("*",),
    excludes: Iterable[str] = (),
    *,
    log: Callable[[str], None] = print,
    after_each: Callable[[list[dict[str, Any]]], None] | None = None,
) -> list[dict[str, Any]]:
    """Time every selected configuration in interleaved rounds; returns one entry per config.

    Skips and errors are recorded in the entry (``skipped``/``error``), never raised: one
    broken configuration must not end a long run. ``after_each(entries)`` saves partial
    results.
    """
    todo = plan(settings, patterns, excludes)
    entries = {
        name: {"name": name, "suite": s.name, "config": name.split("/", 1)[1], "params": params}
        for name, s, params in todo
    }
    for name, s, params in todo:
        reason = s.cls.skip_reason(settings, params)
        if reason:
            entries[name]["skipped"] = reason
            log(f"  {name:<36} skipped: {reason}")
    for r in range(settings.rounds):
        log(f"round {r + 1}/{settings.rounds}")
        shift = r % max(1, len(todo))
        for name, s, params in todo[shift:] + todo[:shift]:
            e = entries[name]
            if "skipped" in e or "error" in e:
                continue
            try:
                bench = s.cls(settings, **params)
                raw = measure(bench, settings.runs, settings.warmup)
            except Exception as err:  # noqa: BLE001  (recorded, see the docstring)
                e["error"] = f"{type(err).__name__}: {err}"
                e["traceback"] = traceback.format_exc(limit=6)
                log(f"  {name:<36} ERROR {e['error']}")
                continue
            finally:
                gc.collect()
            e.setdefault("round_times_s", []).append([round(x, 6) for x in raw["times_s"]])
            e["times_s"] = e.get("times_s", []) + raw.pop("times_s")
            e["cpu_s"] = e.get("cpu_s", []) + raw.pop("cpu_s")
            e["setup_s"] = e.get("setup_s", []) + [round(raw.pop("setup_s"), 3)]
            e.update(raw, images_per_run=bench.images_per_run, rounds=r + 1)
            summarize(e)
            log(
                f"  {name:<36} {e['images_per_s']:>9.1f} img/s "
                f"(this round {e['round_images_per_s'][-1]:.1f})"
            )
            if after_each is not None:
                after_each(list(entries.values()))
    return list(entries.values())


__all__ = [
    "SUITES",
    "Benchmark",
    "Settings",
    "Suite",
    "load_suites",
    "measure",
    "plan",
    "proc_cpu_seconds",
    "run",
    "selected",
    "suite",
    "summarize",
    "usable_cpus",
]
