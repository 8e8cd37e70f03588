"""``dali-gridaug bench``: time the registered suites in interleaved rounds, write
``<out>/<name>_<device>.json`` (machine stamp, dataset, every configuration's timings, the
targets of ``targets.toml`` with pass/fail) and a PNG plot of what ran beside it.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from dali_gridaug.bench import core, report

EPILOG = """
suites (--suite/--exclude: SUITE or SUITE/CONFIG, * and ? wildcards, brackets literal,
comma-separated; --list shows the configurations):
  acceptance     DALI CPU backend, side by side: bare DALI, ours without augmentation,
                 + CutMix, + GridMix, + GridMask, torchvision DataLoader (all cores)
  torchvision    ImageFolder + DataLoader, alone and + each reference augmentation
  dali-cpu       our pipeline on DALI's CPU backend, without/with each augmentation
  dali-gpu       the same on the GPU (skipped without one)
  sweep-threads, sweep-batch, sweep-hw-decoder (GPU)
  augment-op     the augmentation alone on a resident batch (--op-batch), vs references
  keep-stage     the Keep stage vs a plain ResNet-18 training step

the acceptance measurement (about 4 minutes on 2 quiet cores):
  dali-gridaug bench --suite acceptance --device cpu --num-images 1024 --batch-size 64 \\
      --batches 16 --runs 2 --warmup 1 --rounds 7 --name acceptance
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``bench`` options (defaults: a few minutes on a small CPU machine)."""
    ap = argparse.ArgumentParser(
        prog="dali-gridaug bench",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = ap.add_argument
    add("--suite", default="*", metavar="PATTERN", help="suites/configs to run (default all)")
    add("--exclude", default="", metavar="PATTERN", help="suites/configs to leave out")
    add("--device", default="auto", choices=("auto", "cpu", "gpu"), help="where ours runs")
    add("--runs", type=int, default=3, help="timed runs per configuration per round")
    add("--warmup", type=int, default=1, help="untimed runs per configuration per round")
    add("--rounds", type=int, default=1, help="interleaved rounds (steadier ratios)")
    add("--batches", type=int, default=4, help="batches per run")
    add("--batch-size", type=int, default=32)
    add("--image-size", type=int, default=224)
    add("--workers", type=int, default=core.usable_cpus(), help="default: all usable cores")
    add("--op-batch", type=int, default=256, help="batch of the augment-op suite")
    add("--dataset", default="photos", help="photos (default) | sample | IMAGEFOLDER")
    add("--num-images", type=int, default=256, help="photos to generate")
    add("--data", help="where datasets are generated (default: the user cache dir)")
    add("--seed", type=int, default=0)
    add(
        "--out",
        type=Path,
        help="folder of the JSON and PNG (default: benchmarks/results "
        "in a source checkout, else the user cache dir)",
    )
    add("--name", default="throughput", help="file stem: <name>_<device>.json")
    add("--no-plot", action="store_true", help="skip the PNG")
    add("--list", action="store_true", help="list the selected configurations and exit")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``dali-gridaug bench``; returns 1 when a configuration failed, else 0."""
    args = build_parser().parse_args(argv)
    import torch

    from dali_gridaug.errors import UsageError

    device = args.device
    if device == "auto":
        device = "gpu" if torch.cuda.is_available() else "cpu"
    elif device == "gpu" and not torch.cuda.is_available():
        raise UsageError("`--device gpu`: no CUDA GPU is available")
    settings = core.Settings(
        device=device,
        runs=args.runs,
        warmup=args.warmup,
        batches=args.batches,
        batch_size=args.batch_size,
        image_size=args.image_size,
        workers=args.workers,
        op_batch=args.op_batch,
        rounds=args.rounds,
        seed=args.seed,
    )
    patterns = [p for p in args.suite.split(",") if p]
    excludes = [p for p in args.exclude.split(",") if p]
    if args.list:
        for name, s, params in core.plan(settings, patterns, excludes):
            why = s.cls.skip_reason(settings, params)
            print(name + (f"   (skipped: {why})" if why else ""))
        return 0
    from dali_gridaug.bench import data

    settings.dataset = data.resolve(
        args.dataset, num_images=args.num_images, data=args.data, seed=args.seed
    )
    result = report.new_result(args.name, settings, argv)
    path = report.result_path(args.out or report.results_dir(), result)
    print(
        f"{result['machine']['device']}: {settings.dataset['images']} images "
        f"({settings.dataset['kind']}); writing {path}",
        flush=True,
    )
    t0 = time.perf_counter()

    def save(configs: list[dict]) -> None:
        result["configs"] = configs
        result["targets"] = report.evaluate_targets(result)
        result["elapsed_s"] = round(time.perf_counter() - t0, 1)
        report.write(path, result)

    log = lambda line: print(line, flush=True)  # noqa: E731
    save(core.run(settings, patterns, excludes, log=log, after_each=save))
    report.print_targets(result["targets"])
    if not args.no_plot:
        from dali_gridaug.bench.plot import plot

        print(f"wrote {plot(result, path.with_suffix('.png'))}")
    print(f"wrote {path}")
    return 1 if any("error" in c for c in result["configs"]) else 0
