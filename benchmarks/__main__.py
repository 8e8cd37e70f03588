"""``python -m benchmarks`` / ``dali-gridaug bench``: run the registered suites, write
``<out>/<name>_<device>.json`` (machine stamp, dataset, every configuration's timings and
provenance, the issue's targets) and a PNG plot beside it."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"

#: defaults per device: (runs, warmup, batches, batch_size, num_images, op_batch)
DEFAULTS: dict[str, dict[str, int]] = {
    "cpu": {
        "runs": 5,
        "warmup": 1,
        "batches": 4,
        "batch_size": 32,
        "num_images": 64,
        "op_batch": 256,
    },
    "gpu": {
        "runs": 5,
        "warmup": 2,
        "batches": 20,
        "batch_size": 256,
        "num_images": 4096,
        "op_batch": 256,
    },
}

EPILOG = """
suites (select with --suite/--exclude: SUITE or SUITE/CONFIG, * and ? wildcards, brackets
literal, comma-separated; --list shows the configurations):
  torchvision        (a) ImageFolder+DataLoader baseline, (b) + reference augmentations
  dali-cpu           (c) our pipeline on DALI's CPU backend, without/with each augmentation
  dali-gpu           (d) the same on the GPU (skipped, with the reason, without one)
  sweep-batch, sweep-threads, sweep-size, sweep-hw-decoder (GPU only), sweep-tv-workers
  augment-op         the augmentation alone on a resident batch (--op-batch), vs references
  saliency-stage     (e) Keep stage vs a plain training step (benchmarks/saliency_stage.py)

defaults per device (each overridable):
  cpu: --runs 5 --warmup 1 --batches 4 --batch-size 32 --num-images 64 --op-batch 256
  gpu: --runs 5 --warmup 2 --batches 20 --batch-size 256 --num-images 4096 --op-batch 256

examples:
  python -m benchmarks --exclude saliency-stage           # CPU, a few minutes on 2 cores
  python -m benchmarks --suite 'torchvision,dali-*' --runs 3 --rounds 2
  python -m benchmarks --device gpu --suite 'torchvision,dali-gpu,augment-op,saliency-stage' \\
      --out $OUT                                            # the targets
  python -m benchmarks --device gpu --suite 'dali-cpu,sweep-*' --name scaling --out $OUT
  python -m benchmarks.plot RESULT.json                     # redraw a plot
"""


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="dali-gridaug bench"
        if Path(sys.argv[0]).name == "dali-gridaug"
        else "python -m benchmarks",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--suite",
        "--pattern",
        default="*",
        metavar="PATTERN",
        help="suites/configs to run (default: all)",
    )
    ap.add_argument("--exclude", default="", metavar="PATTERN", help="suites/configs to leave out")
    ap.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cpu", "gpu"),
        help="device of our pipeline and of the references' augmentation",
    )
    ap.add_argument("--runs", type=int, help="timed runs per configuration (median reported)")
    ap.add_argument("--warmup", type=int, help="untimed warm-up runs per configuration")
    ap.add_argument("--batches", type=int, help="batches per run")
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the whole selection this many times and pool each "
        "configuration's runs (steadier on a shared machine)",
    )
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument(
        "--workers",
        type=int,
        default=_usable_cpus(),
        help="DataLoader workers and DALI CPU threads (default: all cores)",
    )
    ap.add_argument("--op-batch", type=int, help="batch of the augment-op suite (target: 256)")
    ap.add_argument(
        "--dataset",
        default="imagenet-like",
        help="imagenet-like | sample | PATH of an ImageFolder (default imagenet-like)",
    )
    ap.add_argument("--num-images", type=int, help="images generated for imagenet-like")
    ap.add_argument("--classes", type=int, default=10, help="classes of imagenet-like")
    ap.add_argument("--cache-dir", help="where generated datasets are cached")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS_DIR), help="output folder for JSON and PNG")
    ap.add_argument("--name", default="throughput", help="output file stem (<name>_<device>)")
    ap.add_argument("--no-plot", action="store_true", help="skip the PNG")
    ap.add_argument("--list", action="store_true", help="list the selected configurations")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    from benchmarks.data import resolve_dataset
    from benchmarks.registry import Settings, command_line, machine_info, run_suites, selected
    from benchmarks.suites import load_suites

    device = args.device
    if device == "auto":
        device = "gpu" if torch.cuda.is_available() else "cpu"
    d = DEFAULTS[device]
    patterns = [p for p in args.suite.split(",") if p]
    excludes = [p for p in args.exclude.split(",") if p]
    suites = load_suites()
    pick = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in d.items()}

    if args.list:
        settings = Settings(
            device=device,
            runs=pick["runs"],
            warmup=pick["warmup"],
            batches=pick["batches"],
            batch_size=pick["batch_size"],
            image_size=args.image_size,
            workers=args.workers,
            op_batch=pick["op_batch"],
            dataset={"root": "", "classes": args.classes},
        )
        for suite in suites.values():
            for params in suite.configs(settings):
                cname = suite.cls.config_name(params)
                if selected(patterns, excludes, suite.name, cname):
                    why = suite.cls.skip_reason(settings, params)
                    print(f"{suite.name}/{cname}" + (f"   (skipped: {why})" if why else ""))
        return 0

    t0 = time.perf_counter()
    print(f"dataset {args.dataset} …", flush=True)
    dataset = resolve_dataset(
        args.dataset,
        num_images=pick["num_images"],
        classes=args.classes,
        cache_dir=args.cache_dir,
        seed=args.seed,
    )
    print(
        f"  {dataset['images']} images, {dataset['classes']} classes, "
        f"~{dataset['mean_width']:.0f}×{dataset['mean_height']:.0f}, "
        f"{dataset['mean_file_kib']} KiB ({dataset['root']})",
        flush=True,
    )
    settings = Settings(
        device=device,
        runs=pick["runs"],
        warmup=pick["warmup"],
        batches=pick["batches"],
        batch_size=pick["batch_size"],
        image_size=args.image_size,
        workers=args.workers,
        op_batch=pick["op_batch"],
        dataset=dataset,
        seed=args.seed,
    )
    machine = machine_info(device)
    result: dict[str, Any] = {
        "schema": 1,
        "name": args.name,
        **{k: machine[k] for k in ("device", "gpu", "cpu_count", "cpu_affinity", "cpu_model")},
        "versions": machine["versions"],
        "platform": machine["platform"],
        "git_commit": machine["git_commit"],
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command_line(),
        "dataset": dataset,
        "settings": {
            "device": device,
            "runs": settings.runs,
            "warmup_runs": settings.warmup,
            "batches_per_run": settings.batches,
            "batch_size": settings.batch_size,
            "image_size": settings.image_size,
            "workers": settings.workers,
            "op_batch": settings.op_batch,
            "seed": settings.seed,
            "rounds": args.rounds,
            "timing": "time.perf_counter around each run, device synchronized at its end; "
            "setup and warm-up runs excluded; images_per_s = images_per_run / median_s over "
            "runs × rounds timed runs",
        },
        "configs": [],
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from benchmarks.registry import device_slug

    json_path = out / f"{args.name}_{device_slug(machine)}.json"
    print(
        f"device {machine['device']} ({machine['cpu_count']} CPUs); writing {json_path}", flush=True
    )

    def checkpoint(configs: list[dict[str, Any]]) -> None:
        result["configs"] = configs
        add_relative(configs)
        result["targets"] = compute_targets(configs, settings)
        result["elapsed_s"] = round(time.perf_counter() - t0, 1)
        _write_json(json_path, result)

    configs = run_suites(settings, patterns, excludes, after_each=checkpoint, rounds=args.rounds)
    checkpoint(configs)
    print_targets(result["targets"])
    if not args.no_plot:
        try:
            from benchmarks.plot import plot

            png = plot(result, json_path.with_suffix(".png"))
            print(f"wrote {json_path} and {png}")
        except ImportError as err:
            print(f"wrote {json_path} (no plot: {err})")
    else:
        print(f"wrote {json_path}")
    errors = [c for c in configs if "error" in c]
    return 1 if errors else 0


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)


def _ips(configs: list[dict[str, Any]], name: str) -> float | None:
    for c in configs:
        if c["name"] == name and "images_per_s" in c:
            return float(c["images_per_s"])
    return None


def _median(configs: list[dict[str, Any]], name: str) -> float | None:
    return _field(configs, name, "median_s")


def _field(configs: list[dict[str, Any]], name: str, key: str) -> float | None:
    for c in configs:
        if c["name"] == name and c.get(key) is not None:
            return float(c[key])
    return None


def add_relative(configs: list[dict[str, Any]]) -> None:
    """``vs_torchvision``: each loader configuration's throughput over the torchvision
    baseline's (same files, same machine, same run); ``vs_baseline``: our pipeline's time per
    image with an augmentation over without it; ``relative_to_plain``: a Keep-stage step's
    time over the plain training step's (the ``saliency-stage`` suite)."""
    base = _ips(configs, "torchvision/baseline")
    plain = _median(configs, "saliency-stage/plain")
    for c in configs:
        if "images_per_s" not in c:
            continue
        if base and c["suite"] in ("torchvision", "dali-cpu", "dali-gpu"):
            c["vs_torchvision"] = round(c["images_per_s"] / base, 4)
        ours = _ips(configs, f"{c['suite']}/baseline")
        if ours and c["suite"] in ("dali-cpu", "dali-gpu"):
            c["vs_baseline"] = round(ours / c["images_per_s"], 4)
        if plain and c["suite"] == "saliency-stage":
            c["relative_to_plain"] = round(c["median_s"] / plain, 4)


def _auto_backend(aug: str) -> str:
    from benchmarks.suites.common import our_augment

    return our_augment(aug, "auto", 224).resolve_backend()


def compute_targets(configs: list[dict[str, Any]], settings: Any) -> dict[str, Any]:
    """The issue's targets, with measured values and pass/fail (None: not measurable here)."""
    from benchmarks.suites.common import AUGS, BACKENDS

    gpu = settings.device == "gpu"
    tv = _ips(configs, "torchvision/baseline")
    fam = "dali-gpu" if gpu else "dali-cpu"
    mixing = ("cutmix", "gridmix")
    targets: dict[str, Any] = {}

    def entry(desc: str, threshold: float, value: Any, ok: bool | None, **extra: Any) -> dict:
        return {"description": desc, "threshold": threshold, "value": value, "pass": ok, **extra}

    # 1. GPU pipeline with GridMix / CutMix ≥ 4× the torchvision DataLoader (all cores)
    desc = "our GPU pipeline with CutMix / GridMix over the torchvision DataLoader (all cores)"
    if not gpu:
        targets["mixing_vs_torchvision"] = entry(desc, 4.0, None, None, reason="needs a GPU run")
    else:
        vals = {a: _ratio(_ips(configs, f"dali-gpu/+{a}[{_auto_backend(a)}]"), tv) for a in mixing}
        targets["mixing_vs_torchvision"] = entry(
            desc,
            4.0,
            vals,
            _all_ge(vals, 4.0),
            measured_on="gpu",
            note=f"torchvision baseline with {settings.workers} workers",
        )
    # 2. ≥ 10,000 images/s on ImageNet-like JPEGs at 224
    desc = "our GPU pipeline with CutMix / GridMix, images/s on ImageNet-like JPEGs at 224"
    if not gpu:
        targets["mixing_images_per_s"] = entry(desc, 10000.0, None, None, reason="needs a GPU run")
    else:
        vals = {a: _ips(configs, f"dali-gpu/+{a}[{_auto_backend(a)}]") for a in mixing}
        comparable = settings.image_size == 224 and settings.dataset.get("kind") == "imagenet-like"
        targets["mixing_images_per_s"] = entry(
            desc,
            10000.0,
            vals,
            _all_ge(vals, 10000.0) if comparable else None,
            measured_on="gpu",
            **({} if comparable else {"reason": "not imagenet-like JPEGs at 224"}),
        )
    # 3. in-graph overhead ≤ 3 % of the same pipeline without augmentation
    base_t = _median(configs, f"{fam}/baseline")
    overhead = {
        f"{a}[{b}]": _round(_ratio(_median(configs, f"{fam}/+{a}[{b}]"), base_t), minus=1.0)
        for a in AUGS
        for b in BACKENDS
    }
    default = {a: overhead[f"{a}[{_auto_backend(a)}]"] for a in AUGS}
    have = [v for v in default.values() if v is not None]
    base_cpu = _field(configs, f"{fam}/baseline", "cpu_s_per_image")
    cpu_overhead = {
        f"{a}[{b}]": _round(
            _ratio(_field(configs, f"{fam}/+{a}[{b}]", "cpu_s_per_image"), base_cpu), minus=1.0
        )
        for a in AUGS
        for b in BACKENDS
    }
    targets["in_graph_overhead"] = entry(
        "time per image with the augmentation (default backend) over without it, minus 1",
        0.03,
        {"default_backend": default, "all": overhead},
        (max(have) <= 0.03) if have and len(have) == len(default) else None,
        measured_on=fam,
        cpu_time_overhead=cpu_overhead,
        **(
            {}
            if gpu
            else {
                "note": "the issue states this target for the GPU pipeline; the CPU value is "
                "indicative (cpu_time_overhead: the same ratio in CPU seconds per image, "
                "less sensitive to other processes on a shared machine)"
            }
        ),
    )
    # 4. ≥ 20× the official GridMask per-sample loop at batch 256
    official = _median(configs, "augment-op/gridmask[official]")
    vals = {
        b: _round(_ratio(official, _median(configs, f"augment-op/gridmask[{b}]"))) for b in BACKENDS
    }
    ours = vals[_auto_backend("gridmask")]
    ok = None if ours is None or settings.op_batch != 256 else ours >= 20.0
    targets["gridmask_vs_official_loop"] = entry(
        "official GridMask per-sample loop time / our GridMask op time, one batch on the device",
        20.0,
        {"default_backend": ours, "by_backend": vals},
        ok,
        measured_on=settings.device,
        op_batch=settings.op_batch,
        **({} if gpu else {"note": "the issue states this target for the GPU; CPU indicative"}),
    )
    return targets


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _round(v: float | None, minus: float = 0.0) -> float | None:
    return None if v is None else round(v - minus, 4)


def _all_ge(vals: dict[str, float | None], threshold: float) -> bool | None:
    if any(v is None for v in vals.values()):
        return None
    return all(v >= threshold for v in vals.values())  # type: ignore[operator]


def print_targets(targets: dict[str, Any]) -> None:
    print("targets:")
    for key, t in targets.items():
        status = {True: "PASS", False: "FAIL", None: "n/a "}[t["pass"]]
        extra = t.get("reason") or t.get("measured_on", "")
        print(f"  [{status}] {key}: {json.dumps(t['value'])} (threshold {t['threshold']}; {extra})")


if __name__ == "__main__":
    sys.exit(main())
