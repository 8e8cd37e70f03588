"""Cost of the Keep stage relative to a plain training step (KeepAugment §3.1, SPEC "Keep").

Times, on the available device, one training step of torchvision ResNet-18 (forward, backward,
SGD) on a resident batch, the same step preceded by the Keep stage (KeepCutout with full,
low-resolution and early-head saliency; KeepCutMix, KeepGridMask and selective paste with full
saliency), the step with the early head's auxiliary loss alone, and the region selection alone
on a precomputed saliency map. Warm-up runs are excluded; the figure is the median of N runs
(min/max recorded). The paper's CIFAR-10 ResNet-18 seconds per epoch (Cutout 19, KeepCutout 38,
low-resolution 24, early head 23) give the reference ratios 2.0, 1.26 and 1.21.

The configurations are registered as the ``saliency-stage`` suite of
:mod:`benchmarks.registry` (so ``python -m benchmarks`` runs them with its own settings) and
timed by the registry's ``time_config``. Standalone (interleaved rounds, see :func:`measure`)::

    python -m benchmarks.saliency_stage --out benchmarks/results/saliency_stage_cpu.json

writes the JSON and a PNG bar plot next to it (matplotlib, Agg backend).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from benchmarks.registry import Benchmark, benchmark
from dali_gridaug.batch import Batch
from dali_gridaug.saliency import EarlyHeadResNet, KeepStage, early_head_loss, select_windows

#: Paper Table/§3.1 figures: CIFAR-10, ResNet-18, seconds per epoch.
PAPER_SECONDS_PER_EPOCH = {"cutout": 19.0, "keep_cutout": 38.0, "lowres": 24.0, "early": 23.0}
PAPER_RELATIVE = {
    "keep-cutout-full": round(38.0 / 19.0, 2),
    "keep-cutout-lowres": round(24.0 / 19.0, 2),
    "keep-cutout-early": round(23.0 / 19.0, 2),
}

#: name → (Keep method or None, saliency, model with early head, what is timed)
CONFIGS: dict[str, tuple[str | None, str, bool, str]] = {
    "plain": (None, "full", False, "step"),
    "plain-early-head": (None, "full", True, "step"),
    "keep-cutout-full": ("cutout", "full", False, "step"),
    "keep-cutout-lowres": ("cutout", "lowres", False, "step"),
    "keep-cutout-early": ("cutout", "early", True, "step"),
    "keep-cutmix-full": ("cutmix", "full", False, "step"),
    "keep-gridmask-full": ("gridmask", "full", False, "step"),
    "keep-paste-full": ("paste", "full", False, "step"),
    "regions-only": (None, "full", False, "regions"),
}


@dataclasses.dataclass(frozen=True)
class StageSettings:
    """Standalone settings (the registry's ``Settings`` carries the same attributes)."""

    device: str  # "cpu" | "gpu"
    runs: int
    warmup: int
    batch_size: int
    image_size: int
    num_classes: int = 10
    length: int | None = None
    seed: int = 0

    @property
    def images_per_run(self) -> int:
        return self.batch_size


@benchmark(lambda s: [{"config": name} for name in CONFIGS], name="saliency-stage")
class SaliencyStage(Benchmark):
    """One training step (optionally after the Keep stage) of ResNet-18 per run."""

    family = "keep"

    def __init__(self, settings: Any, config: str) -> None:
        self.settings = settings
        self.params = {"config": config}
        self.config = config
        self.method, self.saliency, self.early, self.what = CONFIGS[config]
        self.images_per_run = settings.batch_size
        self.dev = torch.device("cuda" if settings.device == "gpu" else "cpu")
        size = settings.image_size
        self.length = getattr(settings, "length", None) or max(1, size // 2)
        self.num_classes = int(getattr(settings, "num_classes", 10))

    @classmethod
    def config_name(cls, params: dict[str, Any]) -> str:
        return params["config"]

    @classmethod
    def skip_reason(cls, settings: Any, params: dict[str, Any]) -> str | None:
        if settings.device == "gpu" and not torch.cuda.is_available():
            return "no CUDA device"
        return None

    def setup(self) -> None:
        from torchvision.models import resnet18

        s = self.settings
        torch.manual_seed(s.seed)
        model = resnet18(num_classes=self.num_classes)
        if self.early:
            model = EarlyHeadResNet(model)
        self.model = model.to(self.dev).train()
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        gen = torch.Generator(device=self.dev).manual_seed(s.seed)
        b, size = s.batch_size, s.image_size
        images = torch.randn(b, 3, size, size, generator=gen, device=self.dev)
        labels = torch.randint(0, self.num_classes, (b,), generator=gen, device=self.dev)
        clean = torch.randn(b, 3, size, size, generator=gen, device=self.dev)
        self.batch = Batch(
            images=images,
            target=labels,
            labels=labels,
            index=torch.arange(b, device=self.dev),
            lam=torch.ones(b, device=self.dev),
            partner=torch.arange(b, device=self.dev),
            clean=clean if self.method == "paste" else None,
        )
        self.stage = None
        if self.method is not None:
            self.stage = KeepStage(
                self.model,
                self.method,
                length=self.length,
                saliency=self.saliency,
                generator=gen,
            )
        self.saliency_map = torch.rand(b, size, size, generator=gen, device=self.dev)
        self.gen = gen

    def run(self) -> None:
        if self.what == "regions":
            select_windows(
                self.saliency_map,
                self.length,
                self.length,
                tau=0.6,
                which="cut",
                generator=self.gen,
            )
            return
        batch = self.stage(self.batch) if self.stage is not None else self.batch
        target = batch.target
        if target.ndim == 1:
            target = F.one_hot(target, self.num_classes).float()
        out = self.model(batch.images)
        if self.early:
            logits, early_logits = out
            loss = early_head_loss(F.cross_entropy(logits, target), early_logits, target)
        else:
            loss = F.cross_entropy(out, target)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def sync(self) -> None:
        if self.dev.type == "cuda":
            torch.cuda.synchronize(self.dev)

    def describe(self) -> dict[str, Any]:
        s = self.settings
        return {
            "implementation": "dali_gridaug.saliency.KeepStage + torchvision resnet18 SGD step"
            if self.what == "step"
            else "dali_gridaug.saliency.select_windows on a precomputed (B, H, W) map",
            "method": self.method,
            "saliency": self.saliency if self.method is not None else None,
            "early_head": self.early,
            "batch_size": s.batch_size,
            "image_size": s.image_size,
            "length": self.length,
            "num_classes": self.num_classes,
            "torch_threads": torch.get_num_threads(),
        }


def measure(settings: StageSettings, configs: list[str] | None = None) -> list[dict[str, Any]]:
    """Time every configuration in interleaved rounds; ``relative_to_plain`` = median / plain's.

    Unlike the registry's one-configuration-at-a-time :func:`~benchmarks.registry.time_config`,
    each round runs every configuration once, so drifting background load on a shared machine
    hits all of them alike and the ratios stay comparable.
    """
    import time

    import numpy as np

    names = configs or list(CONFIGS)
    benches = {name: SaliencyStage(settings, name) for name in names}
    for bench in benches.values():
        bench.setup()
        for _ in range(settings.warmup):
            bench.run()
            bench.sync()
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(settings.runs):
        for name, bench in benches.items():
            start = time.perf_counter()
            bench.run()
            bench.sync()
            times[name].append(time.perf_counter() - start)
    results = []
    for name, bench in benches.items():
        t = np.asarray(times[name])
        results.append(
            {
                "name": name,
                "seconds_per_step": float(np.median(t)),
                "min_s": float(t.min()),
                "max_s": float(t.max()),
                "times_s": [round(float(x), 6) for x in t],
                "runs": settings.runs,
                "warmup_runs": settings.warmup,
                **bench.describe(),
            }
        )
        print(f"  {name:<22} {float(np.median(t)) * 1e3:9.1f} ms/step", flush=True)
        bench.teardown()
    plain = next((r["seconds_per_step"] for r in results if r["name"] == "plain"), None)
    for r in results:
        r["relative_to_plain"] = r["seconds_per_step"] / plain if plain else None
        r["paper_relative"] = PAPER_RELATIVE.get(r["name"])
    return results


def machine(device: str) -> dict[str, Any]:
    """The keys the brief asks for, plus the registry's full machine stamp when available."""
    info: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if device == "gpu" else "cpu",
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        "load_average_before": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    try:
        from benchmarks.registry import machine_info

        info["machine"] = machine_info(device)
    except Exception as err:  # noqa: BLE001  (provenance is best effort)
        info["machine"] = {"error": f"{type(err).__name__}: {err}"}
    return info


def plot(report: dict[str, Any], path: Path) -> None:
    """Bar plot of time relative to the plain step, with the paper's ratios beside ours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["configs"] if r["name"] != "regions-only"]
    names = [r["name"] for r in rows]
    ours = [r["relative_to_plain"] for r in rows]
    paper = [r["paper_relative"] for r in rows]
    x = range(len(rows))
    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax.bar([i - 0.2 for i in x], ours, width=0.4, label=f"ours ({report['device']})")
    ax.bar(
        [i + 0.2 for i in x if paper[i] is not None],
        [p for p in paper if p is not None],
        width=0.4,
        label="paper (CIFAR-10 R-18, s/epoch)",
    )
    for i, v in enumerate(ours):
        ax.text(i - 0.2, v, f"{v:.2f}", ha="center", va="bottom", fontsize=8)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xticks(list(x), names, rotation=30, ha="right")
    ax.set_ylabel("time per step / plain step")
    s = report["settings"]
    regions = next((r for r in report["configs"] if r["name"] == "regions-only"), None)
    extra = (
        f"; region selection alone {regions['seconds_per_step'] * 1e3:.1f} ms" if regions else ""
    )
    ax.set_title(
        f"Keep stage cost, ResNet-18, B={s['batch_size']}, {s['image_size']}², "
        f"L={s['length']}{extra}",
        fontsize=10,
    )
    ax.set_ylim(0, 1.3 * max(v for v in ours + paper if v is not None))
    ax.legend(loc="upper left", ncols=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    gpu = torch.cuda.is_available()
    parser.add_argument("--device", choices=("cpu", "gpu"), default="gpu" if gpu else "cpu")
    parser.add_argument("--batch-size", type=int, default=None, help="CPU 16, GPU 128")
    parser.add_argument("--size", type=int, default=None, help="image side; CPU 112, GPU 224")
    parser.add_argument("--length", type=int, default=None, help="window side (default size/2)")
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--configs", nargs="*", choices=list(CONFIGS), default=None)
    parser.add_argument("--out", type=Path, default=None, help="JSON path (PNG next to it)")
    args = parser.parse_args(argv)
    on_gpu = args.device == "gpu"
    settings = StageSettings(
        device=args.device,
        runs=args.runs,
        warmup=args.warmup,
        batch_size=args.batch_size or (128 if on_gpu else 16),
        image_size=args.size or (224 if on_gpu else 112),
        num_classes=args.num_classes,
        length=args.length,
        seed=args.seed,
    )
    info = machine(args.device)
    print(f"saliency stage on {info['device']} ({info['torch_threads']} torch threads)")
    configs = measure(settings, args.configs)
    if hasattr(os, "getloadavg"):
        info["load_average_after"] = list(os.getloadavg())
    size = settings.image_size
    report = {
        **info,
        "command": " ".join(
            [Path(sys.executable).name, "-m", "benchmarks.saliency_stage"]
            + (argv if argv is not None else sys.argv[1:])
        ),
        "settings": {
            **dataclasses.asdict(settings),
            "length": settings.length or max(1, size // 2),
            "model": "torchvision resnet18, SGD(lr=0.01, momentum=0.9), fp32",
            "batch": "resident random normal images and labels on the device",
            "tau": 0.6,
        },
        "configs": configs,
        "paper": {
            "source": "KeepAugment §3.1 / SPEC: CIFAR-10, ResNet-18, seconds per epoch",
            "seconds_per_epoch": PAPER_SECONDS_PER_EPOCH,
            "relative": PAPER_RELATIVE,
        },
    }
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        plot(report, args.out.with_suffix(".png"))
        print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
