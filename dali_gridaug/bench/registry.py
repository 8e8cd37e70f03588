"""What a benchmark suite is written against: :class:`Settings`, the :class:`Benchmark` base
class, the ``@suite`` registry (:data:`SUITES`) and the CPU-time helpers.

The suite modules (:mod:`dali_gridaug.bench.suites`) import this module and register into
:data:`SUITES`; the runner (:mod:`dali_gridaug.bench.core`) imports both.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


@dataclasses.dataclass
class Settings:
    """What every configuration of one run shares.

    Attributes:
        device: ``"cpu"`` or ``"gpu"``: where the library's pipeline and the references run.
        runs: timed runs per configuration per round.
        warmup: untimed runs per configuration per round (after setup, before the clock).
        batches: batches per run.
        batch_size: images per batch.
        image_size: output side in pixels.
        workers: DataLoader workers and DALI CPU threads.
        op_batch: batch of the augmentation-alone suite.
        rounds: interleaved rounds.
        dataset: the dataset's description (``root``, ``classes``, ``kind``…).
        seed: run seed.
    """

    device: str
    runs: int = 3
    warmup: int = 1
    batches: int = 4
    batch_size: int = 32
    image_size: int = 224
    workers: int = 1
    op_batch: int = 256
    rounds: int = 1
    dataset: dict[str, Any] = dataclasses.field(default_factory=dict)
    seed: int = 0

    @property
    def root(self) -> str:
        return str(self.dataset["root"])

    @property
    def num_classes(self) -> int:
        return int(self.dataset.get("classes", 10))


class Benchmark:
    """One configuration: ``setup()``, then ``run()`` (one timed unit of work) repeatedly.

    Subclasses set :attr:`images_per_run` and may override :meth:`skip_reason`,
    :meth:`describe`, :meth:`setup`, :meth:`teardown`, :meth:`cpu_seconds` and :meth:`sync`.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.images_per_run = settings.batches * settings.batch_size

    @classmethod
    def skip_reason(cls, settings: Settings, params: dict[str, Any]) -> str | None:
        """Why this configuration cannot run here (recorded in the JSON), or None."""
        return None

    def describe(self) -> dict[str, Any]:
        """Provenance recorded with the figures (implementation, sizes, threads…)."""
        return {}

    def setup(self) -> None:
        """Build loaders, pipelines or models (not timed)."""

    def teardown(self) -> None:
        """Release workers, pipelines and memory."""

    def run(self) -> None:
        """One timed unit of work (:attr:`images_per_run` images)."""
        raise NotImplementedError

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by the processes doing the work (default: this process)."""
        return time.process_time()

    def sync(self) -> None:
        """Wait for queued device work (inside the clock, after each run)."""
        if self.settings.device == "gpu":
            import torch

            torch.cuda.synchronize()


@dataclasses.dataclass
class Suite:
    """A registered suite. ``sweep`` names the parameter plotted on the x axis (line plot);
    ``stages``: the configs are cumulative pipelines, plotted as CPU cost per image.
    """

    name: str
    cls: type[Benchmark]
    grid: Callable[[Settings], dict[str, dict[str, Any]]]
    baseline: str | None = None
    sweep: str | None = None
    stages: bool = False


#: suite name → Suite, in registration (= run and plot) order.
SUITES: dict[str, Suite] = {}


def suite(
    name: str,
    grid: Callable[[Settings], dict[str, dict[str, Any]]],
    *,
    baseline: str | None = None,
    sweep: str | None = None,
    stages: bool = False,
) -> Callable[[type[Benchmark]], type[Benchmark]]:
    """Register a :class:`Benchmark` subclass as suite ``name``.

    Args:
        name: suite name (``--suite`` patterns match ``name`` or ``name/config``).
        grid: settings → ``{config name: constructor kwargs}``.
        baseline: the config the plot compares the others with.
        sweep: for a scaling sweep, the kwarg plotted on the x axis.
        stages: the configs are cumulative pipelines, each one stage longer than the one
            before it (a ``+name`` config: one stage on top of ``baseline``); the plot shows
            CPU ms per image and each stage's share.
    """

    def register(cls: type[Benchmark]) -> type[Benchmark]:
        SUITES[name] = Suite(name, cls, grid, baseline, sweep, stages)
        return cls

    return register


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` from ``/proc`` (0 where unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def usable_cpus() -> int:
    """CPU cores this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1
