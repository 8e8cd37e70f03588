"""``dali-gridaug selftest``: check the device this machine has, then sample throughput.

The first command to run on a new machine. Where a CUDA GPU exists it runs the test suite's
``gpu``-marked tests (when the tests are present, i.e. in a source checkout) and the GPU-graph
validation of :mod:`dali_gridaug.testing`; then, on whatever device it found, it times the
loader without augmentation, with CutMix and with GridMask on the natural-photo dataset for
about ``--duration`` seconds. It writes one JSON report in the ``dali-gridaug bench`` schema
(plus ``checks``), stamped with the device name and versions.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dali_gridaug.bench import core, report

CONFIGS = ("no-aug", "+cutmix", "+gridmask")


def gpu_tests(tests: Path | None = None, timeout: float = 1800) -> dict[str, Any]:
    """Run ``pytest -m gpu`` on ``tests`` (default: the checkout's ``tests/``, if any).

    Returns:
        ``{"status": "passed" | "failed" | "skipped", "note"?, "summary"?, "returncode"?}``.
    """
    tests = tests or Path(__file__).resolve().parents[2] / "tests"
    if not tests.is_dir():
        return {"status": "skipped", "note": "the tests are not installed (source checkout only)"}
    if importlib.util.find_spec("pytest") is None:
        return {"status": "skipped", "note": "pytest is not installed"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", str(tests)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tests.parent)
    lines = (out.stdout + out.stderr).strip().splitlines()
    summary = next((x for x in reversed(lines) if re.search(r"\d+ (passed|failed|error)", x)), "")
    ok = out.returncode in (0, 5)  # 5: no test selected
    return {
        "status": "passed" if ok else "failed",
        "returncode": out.returncode,
        "summary": summary.strip("= "),
        "tail": lines[-30:] if not ok else [],
    }


def gpu_graphs(names: Sequence[str] | None = None) -> dict[str, Any]:
    """:func:`dali_gridaug.testing.validate_all`: every GPU graph the library builds, checked
    (on a machine with a GPU each also runs a batch there), and the negative controls, which
    the checks must catch.

    Args:
        names: only these graph cases (all when None).

    Returns:
        ``{"status": "passed" | "failed", "failed": n graphs, "missed_controls": n,
        "results": [...], "controls": [{"name", "caught", "message"}]}``.
    """
    from dali_gridaug import testing

    results = [_plain(r) for r in testing.validate_all(names=names)]
    controls = [
        {"name": c.name, "caught": testing.caught(c, r), "message": r.message}
        for c, r in testing.run_controls()
    ]
    failed = sum(not r["ok"] for r in results)
    missed = sum(not c["caught"] for c in controls)
    return {
        "status": "failed" if failed or missed else "passed",
        "failed": failed,
        "missed_controls": missed,
        "results": results,
        "controls": controls,
    }


def _plain(r: Any) -> Any:
    if dataclasses.is_dataclass(r) and not isinstance(r, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(r).items()}
    if isinstance(r, dict):
        return {str(k): _plain(v) for k, v in r.items()}
    if isinstance(r, (list, tuple)):
        return [_plain(v) for v in r]
    return r if isinstance(r, (str, int, float, bool)) or r is None else repr(r)


def calibrate(settings: core.Settings, duration: float) -> int:
    """Batches per run so that the sample (rounds × configs × (setup + warm-up + timed runs))
    takes about ``duration`` seconds, from a probe of the loader without augmentation.
    """
    from dali_gridaug.bench.suites.loaders import GridaugLoader

    probe = dataclasses.replace(settings, batches=4)
    raw = core.measure(GridaugLoader(probe, device=settings.device), runs=1, warmup=1)
    n = settings.rounds * len(CONFIGS)
    budget = duration / n - raw["setup_s"]
    per_run = raw["times_s"][0] / 4 * (settings.runs + settings.warmup) * 1.3  # augmentations
    return max(2, int(budget / per_run))


def build_parser() -> argparse.ArgumentParser:
    """The ``selftest`` options."""
    ap = argparse.ArgumentParser(
        prog="dali-gridaug selftest",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of throughput sample")
    ap.add_argument("--num-images", type=int, default=512, help="photos to generate")
    ap.add_argument("--batch-size", type=int, help="default 64 on CPU, 256 on a GPU")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--data", help="where the photos are generated (default: user cache dir)")
    ap.add_argument("--out", type=Path, help="report folder (default as dali-gridaug bench)")
    ap.add_argument("--skip-checks", action="store_true", help="throughput sample only")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Run the self-test; returns 1 when a check or a configuration failed, else 0."""
    args = build_parser().parse_args(argv)
    import torch

    from dali_gridaug.bench import data

    device = "gpu" if torch.cuda.is_available() else "cpu"
    skip = {"status": "skipped", "note": "no CUDA GPU on this machine"}
    if args.skip_checks:
        skip = {"status": "skipped", "note": "--skip-checks"}
    checks = {"gpu_tests": skip, "gpu_graphs": skip}
    if device == "gpu" and not args.skip_checks:
        print("gpu-marked tests …", flush=True)
        checks["gpu_tests"] = gpu_tests()
    if not args.skip_checks:  # CPU-side checks; with a GPU each graph also runs a batch there
        print("GPU graph validation …", flush=True)
        checks["gpu_graphs"] = gpu_graphs()
    for name, c in checks.items():
        print(f"  {name}: {c['status']} {c.get('summary') or c.get('note') or ''}")
    settings = core.Settings(
        device=device,
        runs=1,
        warmup=1,
        rounds=3,
        image_size=args.image_size,
        batch_size=args.batch_size or (256 if device == "gpu" else 64),
        workers=core.usable_cpus(),
        dataset=data.resolve("photos", num_images=args.num_images, data=args.data),
    )
    t0 = time.perf_counter()
    settings.batches = calibrate(settings, args.duration)
    result = report.new_result("selftest", settings, argv)
    result["checks"] = checks
    patterns = [f"dali-{device}/{c}" for c in CONFIGS]
    result["configs"] = core.run(settings, patterns, log=lambda s: print(s, flush=True))
    result["targets"] = report.evaluate_targets(result)
    result["elapsed_s"] = round(time.perf_counter() - t0, 1)
    path = report.result_path(args.out or report.results_dir(), result)
    report.write(path, result)
    print(f"wrote {path}")
    failed = [c for c in checks.values() if c["status"] == "failed"]
    return 1 if failed or any("error" in c for c in result["configs"]) else 0
