"""The results JSON: machine stamp, targets (from ``targets.toml``) and where results go.

One schema for ``dali-gridaug bench`` and ``dali-gridaug selftest``: ``schema``, ``name``,
``date``, ``command``, ``machine`` (see :func:`machine`), ``dataset``, ``settings``,
``configs`` (one entry per configuration: its timings, or ``skipped``/``error``) and
``targets`` (``{name: {description, threshold, value, pass, reason?}}``).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA = 2
TARGETS_FILE = Path(__file__).with_name("targets.toml")


def results_dir() -> Path:
    """``benchmarks/results`` of the source checkout this package runs from, else the user
    cache dir's ``results`` folder (an installed package writes nowhere else by default).
    """
    checkout = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
    if checkout.is_dir():
        return checkout
    from dali_gridaug.bench.data import cache_dir

    return cache_dir() / "results"


def machine(device: str) -> dict[str, Any]:
    """The machine stamp: device name (the GPU's, else the CPU model), cores, versions."""
    import torch

    gpu = device == "gpu" and torch.cuda.is_available()
    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "dali": _version("nvidia.dali"),
        "numpy": np.__version__,
        "torchvision": _version("torchvision"),
        "dali_gridaug": _version("dali_gridaug"),
        "cuda": torch.version.cuda if gpu else None,
    }
    return {
        "device": torch.cuda.get_device_name() if gpu else _cpu_model(),
        "device_kind": "gpu" if gpu else "cpu",
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "versions": versions,
        "git_commit": _git_commit(),
    }


def new_result(name: str, settings: Any, argv: list[str] | None = None) -> dict[str, Any]:
    """A result skeleton stamped with the machine, the date and the command line."""
    stamp = machine(settings.device)
    return {
        "schema": SCHEMA,
        "name": name,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(
            ["dali-gridaug", name if name == "selftest" else "bench"]
            + list(sys.argv[1:] if argv is None else argv)
        ),
        "machine": stamp,
        "dataset": {k: v for k, v in settings.dataset.items() if k != "root"},
        "settings": {k: v for k, v in dataclasses.asdict(settings).items() if k != "dataset"},
        "timing": "wall time of each run, device synchronized at its end; setup and warm-up "
        "runs excluded; images_per_s = images_per_run / median run time over rounds × runs; "
        "ratios = median over rounds of the per-round ratio",
        "configs": [],
        "targets": {},
    }


def result_path(out: Path, result: dict[str, Any]) -> Path:
    """``<out>/<name>_<device>.json``; the device part is ``cpu`` or the GPU name's slug."""
    m = result["machine"]
    dev = "cpu" if m["device_kind"] == "cpu" else re.sub(r"[^a-z0-9]+", "-", m["device"].lower())
    return out / f"{result['name']}_{dev.strip('-')}.json"


def write(path: Path, result: dict[str, Any]) -> None:
    """Write ``result`` atomically (a partial run leaves a readable file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1, default=_plain) + "\n")
    tmp.replace(path)


def ratio(configs: list[dict[str, Any]], num: str, den: str | None) -> float | None:
    """Throughput of ``num`` over ``den``: the median of per-round ratios (``den`` None: the
    images/s of ``num``); None when either was not measured.
    """
    by = {c["name"]: c for c in configs if "images_per_s" in c}
    if num not in by or (den is not None and den not in by):
        return None
    if den is None:
        return float(by[num]["images_per_s"])
    a, b = by[num]["round_images_per_s"], by[den]["round_images_per_s"]
    if len(a) != len(b):
        return by[num]["images_per_s"] / by[den]["images_per_s"]
    return float(np.median(np.asarray(a) / np.asarray(b)))


def evaluate_targets(result: dict[str, Any], path: Path = TARGETS_FILE) -> dict[str, Any]:
    """Every target of ``path`` whose configurations this run measured, with value and pass."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    specs = tomllib.loads(path.read_text())
    names = {c["name"] for c in result["configs"]}
    facts = {**result["settings"], "dataset": result["dataset"].get("kind")}
    out: dict[str, Any] = {}
    for key, t in specs.items():
        nums, den = t["numerators"], t.get("denominator")
        if not any(n in names for n in nums):
            continue
        vals = {n: ratio(result["configs"], n, den) for n in nums}
        entry = {"description": t["description"], "threshold": t["threshold"], "value": vals}
        off = {k: v for k, v in t.get("when", {}).items() if facts.get(k) != v}
        if off:
            entry.update({"pass": None, "reason": f"defined for {off}; this run differs"})
        elif any(v is None for v in vals.values()) and t.get("combine", "all") == "all":
            entry.update({"pass": None, "reason": "not every configuration was measured"})
        else:
            ok = [v >= t["threshold"] for v in vals.values() if v is not None]
            entry["pass"] = (any if t.get("combine") == "any" else all)(ok) if ok else None
        out[key] = entry
    return out


def print_targets(targets: dict[str, Any]) -> None:
    """One line per target: PASS/FAIL/n-a, value(s), threshold."""
    for key, t in targets.items():
        status = {True: "PASS", False: "FAIL", None: "n/a "}[t["pass"]]
        vals = ", ".join(f"{k.split('/')[-1]} {v:.3g}" for k, v in t["value"].items() if v)
        print(f"  [{status}] {key}: {vals} (≥ {t['threshold']:g}) {t.get('reason', '')}")


def _version(module: str) -> str | None:
    try:
        return str(__import__(module, fromlist=["__version__"]).__version__)
    except Exception:  # noqa: BLE001  (absent or broken: recorded as None)
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return repr(value)
