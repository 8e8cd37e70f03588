"""(e) The Keep stage's cost relative to a training step, delegated to
``benchmarks/saliency_stage.py`` (owned separately).

If that module registers its own suites with ``@benchmark`` (from
:mod:`benchmarks.registry`), importing it (see :func:`benchmarks.suites.load_suites`) is
enough. If instead it exposes a plain function (``run_suite``, ``run``, ``measure`` or
``benchmark``), this adapter calls it once with the keyword arguments it accepts among
``settings, device, runs, warmup, batch_size, image_size, seed`` and records what it returns.
Absent or unimportable, the configuration is recorded as skipped with the reason.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from benchmarks.registry import ALL_SUITES, Benchmark, Settings, benchmark

_FUNCTIONS = ("run_suite", "run", "measure", "benchmark")


def saliency_stage() -> tuple[Any, str | None]:
    """``(module, None)`` or ``(None, why it is unavailable)``."""
    try:
        return importlib.import_module("benchmarks.saliency_stage"), None
    except Exception as err:  # noqa: BLE001  (a broken optional module must not end the run)
        return None, f"benchmarks/saliency_stage.py not importable ({type(err).__name__}: {err})"


def _entry_point(module: Any) -> Callable[..., Any] | None:
    for name in _FUNCTIONS:
        fn = getattr(module, name, None)
        if callable(fn) and not isinstance(fn, type):
            return fn
    return None


@benchmark([{"stage": "keep"}], name="keep-stage")
class KeepStage(Benchmark):
    """Adapter: one call of the saliency-stage function per run."""

    family = "keep"

    @classmethod
    def config_name(cls, params: dict[str, Any]) -> str:
        return "delegated"

    @classmethod
    def skip_reason(cls, settings: Settings, params: dict[str, Any]) -> str | None:
        module, why = saliency_stage()
        if module is None:
            return why
        if any(s.cls.__module__ == module.__name__ for s in ALL_SUITES.values()):
            return "benchmarks/saliency_stage.py registers its own suites (run separately above)"
        if _entry_point(module) is None:
            return f"benchmarks/saliency_stage.py exposes none of {', '.join(_FUNCTIONS)}"
        return None

    def setup(self) -> None:
        module, _ = saliency_stage()
        self.fn = _entry_point(module)
        s = self.settings
        offered = {
            "settings": s,
            "device": s.device,
            "runs": s.runs,
            "warmup": s.warmup,
            "batch_size": s.batch_size,
            "image_size": s.image_size,
            "seed": s.seed,
        }
        accepted = inspect.signature(self.fn).parameters
        self.kwargs = {k: v for k, v in offered.items() if k in accepted}
        self.result: Any = None
        self.images_per_run = s.batch_size

    def run(self) -> None:
        self.result = self.fn(**self.kwargs)

    def describe(self) -> dict[str, Any]:
        return {
            "implementation": f"benchmarks.saliency_stage.{self.fn.__name__}"
            f"({', '.join(self.kwargs)})",
            "delegated_result": _plain(self.result),
            "note": "images_per_s here is batch_size per call of the delegated function; "
            "its own figures are in delegated_result",
        }


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    if hasattr(value, "__dict__"):
        return _plain(vars(value))
    return repr(value)
