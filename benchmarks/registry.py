"""Benchmark registry in the style of FFCV's ``benchmarks/decorator.py``.

``@benchmark(grid)`` registers a :class:`Benchmark` subclass as a *suite*; every point of the
grid is one *configuration*. For each configuration the runner enters the benchmark (setup,
timed separately and excluded), calls :meth:`Benchmark.run` ``warmup`` times (excluded), then
``runs`` times under the clock, and reports the median, min/max and quartiles of the run
times and ``images_per_run / median`` as the throughput.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import itertools
import os
import platform
import re
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

Grid = dict[str, list[Any]] | Callable[["Settings"], dict[str, list[Any]] | list[dict[str, Any]]]


@dataclasses.dataclass
class Settings:
    """What every configuration of a run shares (resolved from the command line)."""

    device: str  # "cpu" | "gpu": the device our pipeline and the references' augmentations use
    runs: int
    warmup: int
    batches: int
    batch_size: int
    image_size: int
    workers: int  # torchvision DataLoader workers and DALI CPU threads
    op_batch: int
    dataset: dict[str, Any]  # from benchmarks.data.resolve_dataset (has "root")
    seed: int = 0

    @property
    def root(self) -> str:
        return str(self.dataset["root"])

    @property
    def num_classes(self) -> int:
        return int(self.dataset["classes"])

    @property
    def images_per_run(self) -> int:
        return self.batches * self.batch_size


class Benchmark:
    """One configuration. ``with bench:`` sets up; ``run()`` is one timed unit of work.

    Subclasses set :attr:`images_per_run` in ``__init__`` and may override
    :meth:`skip_reason`, :meth:`describe`, :meth:`setup`, :meth:`teardown` and :meth:`sync`.
    """

    #: family shown in plots and used by the targets: "torchvision", "reference", "dali-cpu",
    #: "dali-gpu", "op", …
    family: str = ""

    def __init__(self, settings: Settings, **params: Any) -> None:
        self.settings = settings
        self.params = params
        self.images_per_run = settings.images_per_run

    @classmethod
    def config_name(cls, params: dict[str, Any]) -> str:
        """Short configuration name (unique within the suite)."""
        return ",".join(f"{k}={v}" for k, v in params.items()) or "default"

    @classmethod
    def skip_reason(cls, settings: Settings, params: dict[str, Any]) -> str | None:
        """Why this configuration cannot run here (recorded in the JSON), or None."""
        return None

    def describe(self) -> dict[str, Any]:
        """Provenance recorded beside the figure (implementation, sizes, threads…)."""
        return {}

    def setup(self) -> None:
        """Build loaders / pipelines (not timed as throughput; recorded as ``setup_s``)."""

    def teardown(self) -> None:
        """Release workers, pipelines and memory."""

    def run(self) -> None:
        """One timed unit of work (``images_per_run`` images)."""
        raise NotImplementedError

    def cpu_seconds(self) -> float:
        """CPU time used so far by the processes doing this configuration's work (default: this
        process, all threads: DALI's included). Differences around a run give its CPU cost, a
        figure far less sensitive than wall time to other processes sharing the machine."""
        return time.process_time()

    def sync(self) -> None:
        """Wait for queued device work (called inside the clock, after each ``run``)."""
        if self.settings.device == "gpu":
            import torch

            torch.cuda.synchronize()

    def __enter__(self) -> Benchmark:
        self.setup()
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()


@dataclasses.dataclass
class Suite:
    name: str
    cls: type[Benchmark]
    grid: Grid

    def configs(self, settings: Settings) -> list[dict[str, Any]]:
        grid = self.grid(settings) if callable(self.grid) else self.grid
        if isinstance(grid, list):
            return [dict(p) for p in grid]
        keys = list(grid)
        return [dict(zip(keys, vals, strict=True)) for vals in itertools.product(*grid.values())]


#: suite name → Suite, in registration order.
ALL_SUITES: dict[str, Suite] = {}


def benchmark(grid: Grid | None = None, *, name: str | None = None) -> Callable[[type], type]:
    """Register a :class:`Benchmark` subclass as a suite over ``grid``.

    Args:
        grid: ``{param: [values…]}`` (the cartesian product is run), or a callable of the
            :class:`Settings` returning such a dict or an explicit list of parameter dicts.
        name: suite name (default: the class name).
    """

    def wrapper(cls: type) -> type:
        if not (isinstance(cls, type) and issubclass(cls, Benchmark)):
            raise TypeError("@benchmark registers Benchmark subclasses")
        suite = name or cls.__name__
        ALL_SUITES[suite] = Suite(suite, cls, grid if grid is not None else {})
        return cls

    return wrapper


def selected(patterns: Iterable[str], excludes: Iterable[str], suite: str, config: str) -> bool:
    """Shell-style selection on ``suite`` or ``suite/config`` (``*`` and ``?`` are wildcards;
    brackets are literal, as in config names like ``+cutmix[dali]``)."""
    full = f"{suite}/{config}"

    def literal_brackets(p: str) -> str:
        return "".join({"[": "[[]", "]": "[]]"}.get(c, c) for c in p)

    def hit(pats: Iterable[str]) -> bool:
        return any(
            fnmatch.fnmatchcase(suite, q) or fnmatch.fnmatchcase(full, q)
            for q in map(literal_brackets, pats)
        )

    return hit(patterns) and not hit(excludes)


def measure_config(bench: Benchmark, runs: int, warmup: int) -> dict[str, Any]:
    """Setup, ``warmup`` untimed runs, ``runs`` timed runs; the raw timings and provenance."""
    load0 = _loadavg()
    t0 = time.perf_counter()
    with bench:
        setup_s = time.perf_counter() - t0
        for _ in range(warmup):
            bench.run()
            bench.sync()
        times, cpu = [], []
        for _ in range(runs):
            c0 = bench.cpu_seconds()
            start = time.perf_counter()
            bench.run()
            bench.sync()
            times.append(time.perf_counter() - start)
            cpu.append(bench.cpu_seconds() - c0)
        info = bench.describe()
    return {
        "times_s": times,
        "cpu_s": cpu,
        "images_per_run": bench.images_per_run,
        "warmup_runs": warmup,
        "setup_s": [setup_s],
        # other processes on the machine skew the figures: the 1-min load before and after
        "loadavg_1m": [load0, _loadavg()],
        **info,
    }


def summarize(raw: dict[str, Any]) -> dict[str, Any]:
    """Median, min/max, quartiles and throughput of ``raw["times_s"]`` (all rounds)."""
    t = np.asarray(raw["times_s"], np.float64)
    n = raw["images_per_run"]
    median = float(np.median(t))
    cpu = float(np.median(raw["cpu_s"])) if raw.get("cpu_s") else None
    return {
        "images_per_s": n / median,
        "images_per_s_min": n / float(t.max()),
        "images_per_s_max": n / float(t.min()),
        "median_s": median,
        "min_s": float(t.min()),
        "max_s": float(t.max()),
        "q1_s": float(np.percentile(t, 25)),
        "q3_s": float(np.percentile(t, 75)),
        "runs": int(t.size),
        # CPU seconds (all threads and worker processes) per image: the work, not the wait
        "cpu_s_per_image": None if cpu is None else cpu / n,
        "images_per_cpu_s": None if not cpu else n / cpu,
        **{k: v for k, v in raw.items() if k not in ("times_s", "cpu_s")},
        "times_s": [round(float(x), 6) for x in t],
        "cpu_s": [round(float(x), 6) for x in raw.get("cpu_s", [])],
    }


def time_config(bench: Benchmark, runs: int, warmup: int) -> dict[str, Any]:
    """FFCV's loop for one configuration: setup, warm-up, then ``runs`` timed runs; returns the
    summary (``images_per_s`` = ``images_per_run`` / median run time)."""
    return summarize(measure_config(bench, runs, warmup))


def run_suites(
    settings: Settings,
    patterns: Iterable[str] = ("*",),
    excludes: Iterable[str] = (),
    log: Callable[[str], None] | None = None,
    after_each: Callable[[list[dict[str, Any]]], None] | None = None,
    rounds: int = 1,
) -> list[dict[str, Any]]:
    """Run every selected configuration; errors and skips are recorded, not raised.

    With ``rounds`` > 1 the whole selection is run that many times, one configuration after
    the other, and each configuration's timed runs are pooled over the rounds (its figure is
    the median of ``rounds × runs`` runs), so slow drifts of background load on a shared
    machine spread over all configurations instead of biasing a few.
    ``after_each(results)`` is called after every configuration (to save partial results).
    """
    patterns, excludes = list(patterns), list(excludes)
    log = log or (lambda line: print(line, flush=True))
    plan: list[tuple[Suite, dict[str, Any], str]] = []
    for suite in ALL_SUITES.values():
        for params in suite.configs(settings):
            cname = suite.cls.config_name(params)
            if selected(patterns, excludes, suite.name, cname):
                plan.append((suite, params, cname))
    results: dict[str, dict[str, Any]] = {}
    for r in range(rounds):
        if rounds > 1:
            log(f"round {r + 1}/{rounds}")
        for suite, params, cname in plan:
            name = f"{suite.name}/{cname}"
            entry = results.setdefault(
                name,
                {
                    "name": name,
                    "suite": suite.name,
                    "config": cname,
                    "family": suite.cls.family,
                    "params": _jsonable(params),
                },
            )
            if "skipped" in entry or "error" in entry:
                continue
            reason = suite.cls.skip_reason(settings, params)
            if reason is not None:
                entry["skipped"] = reason
                log(f"  {name:<40} skipped: {reason}")
            else:
                try:
                    raw = measure_config(
                        suite.cls(settings, **params), settings.runs, settings.warmup
                    )
                    if "_raw" in entry:  # pool this round's runs with the earlier rounds'
                        prev = entry["_raw"]
                        raw["times_s"] = prev["times_s"] + raw["times_s"]
                        raw["cpu_s"] = prev["cpu_s"] + raw["cpu_s"]
                        raw["setup_s"] = prev["setup_s"] + raw["setup_s"]
                        raw["loadavg_1m"] = prev["loadavg_1m"] + raw["loadavg_1m"]
                    entry["_raw"] = raw
                    entry.update(summarize(raw), rounds=r + 1)
                    log(
                        f"  {name:<40} {entry['images_per_s']:>10.1f} img/s  "
                        f"(median {entry['median_s'] * 1e3:.1f} ms/run, "
                        f"min {entry['min_s'] * 1e3:.1f}, max {entry['max_s'] * 1e3:.1f})"
                    )
                except Exception as err:  # noqa: BLE001  (recorded; one config must not end a run)
                    entry["error"] = f"{type(err).__name__}: {err}"
                    entry["traceback"] = traceback.format_exc(limit=8)
                    log(f"  {name:<40} ERROR {entry['error']}")
                finally:
                    _release_memory(settings.device)
            if after_each is not None:
                after_each(_public(results))
    return _public(results)


def _public(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k != "_raw"} for e in results.values()]


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` from ``/proc`` (0 where unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _release_memory(device: str) -> None:
    import gc

    gc.collect()
    if device == "gpu":
        import torch

        torch.cuda.empty_cache()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    return repr(value)


def machine_info(device: str) -> dict[str, Any]:
    """The machine stamp: device name, CPU count and model, library versions, git commit."""
    import PIL
    import torch
    import torchvision

    gpu = torch.cuda.get_device_name() if device == "gpu" else None
    versions: dict[str, str | None] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "dali": _version("nvidia.dali"),
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "timm": _version("timm"),
        "dali_gridaug": _version("dali_gridaug"),
    }
    if device == "gpu":
        versions["cuda"] = torch.version.cuda
        versions["cupy"] = _version("cupy")
    return {
        "device": gpu or "cpu",
        "gpu": gpu,
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "versions": versions,
        "git_commit": _git_commit(),
    }


def _version(module: str) -> str | None:
    try:
        mod = __import__(module, fromlist=["__version__"])
    except Exception:  # noqa: BLE001
        return None
    return str(getattr(mod, "__version__", None))


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
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def device_slug(info: dict[str, Any]) -> str:
    """``cpu`` or the GPU name as a file-name part (``nvidia-h100-80gb-hbm3``)."""
    return re.sub(r"[^a-z0-9]+", "-", str(info["device"]).lower()).strip("-")


def command_line() -> str:
    """The command as typed (``python -m benchmarks …`` or ``dali-gridaug bench …``)."""
    argv = list(sys.argv)
    if argv and argv[0].endswith(os.path.join("benchmarks", "__main__.py")):
        argv[0] = "-m benchmarks"
    elif argv and Path(argv[0]).name == "dali-gridaug":
        return " ".join(["dali-gridaug", *argv[1:]])
    return " ".join([Path(sys.executable).name, *argv])
