"""Accuracy parity: the same model, data, seed and epochs trained with a torchvision
``DataLoader`` and with ``dali_gridaug.create_loader`` reach the same top-1.

Two settings: (a) no augmentation beyond the ImageNet train preset (random-resized crop +
flip), (b) CutMix (α = 1, one λ and one box per batch, probability 1): on the torchvision side
``torchvision.transforms.v2.CutMix`` applied to each batch, on ours ``CutMix(alpha=1.0, p=1.0,
mode="batch")`` in the DALI graph. Both sides train the same small CNN from the same initial
weights (seeded) with SGD and soft-target cross-entropy, on the CPU, and are evaluated by the
same evaluator (torchvision ``Resize`` + ``CenterCrop`` on the held-out split), so only the
training loader differs. The noise band of a setting is the spread (max − min) of top-1 over
the seeds, the larger of the two sides; parity holds when the two means differ by at most it.

Usage::

    python scripts/accuracy_parity.py --out benchmarks/results/accuracy_parity_cpu.json

Writes JSON with every run's top-1, the per-setting summary and the machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SETTINGS = ("none", "cutmix")


def small_cnn(num_classes: int) -> nn.Module:
    """Three conv-BN-ReLU stages (32, 64, 128 channels), global pool, linear head."""
    layers: list[nn.Module] = []
    channels = 3
    for width in (32, 64, 128):
        layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width)]
        layers += [nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        channels = width
    return nn.Sequential(
        *layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, num_classes)
    )


def torchvision_batches(
    train: Path, args: argparse.Namespace, seed: int, epoch: int, cutmix: bool, k: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of the torchvision pipeline: ``(B, 3, S, S)`` float32, ``(B, K)`` targets."""
    from torchvision import datasets
    from torchvision.transforms import v2

    from dali_gridaug.constants import IMAGENET_MEAN, IMAGENET_STD

    tf = v2.Compose(
        [
            v2.PILToTensor(),
            v2.RandomResizedCrop(args.image_size, antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ToDtype(torch.float32),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    data = datasets.ImageFolder(str(train), transform=tf)
    gen = torch.Generator().manual_seed(seed * 1000 + epoch)
    torch.manual_seed(seed * 1000 + epoch + 1)  # the transforms' global RNG
    loader = torch.utils.data.DataLoader(
        data, batch_size=args.batch_size, shuffle=True, drop_last=True, generator=gen
    )
    mix = v2.CutMix(num_classes=k, alpha=1.0) if cutmix else None
    for images, labels in loader:
        if mix is not None:
            images, target = mix(images, labels)
        else:
            target = F.one_hot(labels, k).float()
        yield images, target


def evaluate(model: nn.Module, val: Path, image_size: int) -> tuple[int, int]:
    """``(correct, total)`` top-1 with torchvision's resize + centre-crop evaluator."""
    from torchvision import datasets
    from torchvision.transforms import v2

    from dali_gridaug.constants import CROP_PCT, IMAGENET_MEAN, IMAGENET_STD

    tf = v2.Compose(
        [
            v2.PILToTensor(),
            v2.Resize(int(image_size / CROP_PCT), antialias=True),
            v2.CenterCrop(image_size),
            v2.ToDtype(torch.float32),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    loader = torch.utils.data.DataLoader(datasets.ImageFolder(str(val), transform=tf), 64)
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for images, labels in loader:
            correct += int((model(images).argmax(1) == labels).sum())
            total += len(labels)
    return correct, total


def train_once(
    side: str, setting: str, seed: int, data: dict[str, Path], args: argparse.Namespace
) -> dict[str, Any]:
    """Train one model; returns its top-1 and what the training loop saw."""
    from dali_gridaug import CutMix, create_loader

    k = len([p for p in data["train"].iterdir() if p.is_dir()])
    torch.manual_seed(seed)
    model = small_cnn(k)
    opt = torch.optim.SGD(
        model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs)
    cutmix = setting == "cutmix"
    ours = None
    if side == "dali":
        ours = create_loader(
            data["train"],
            batch_size=args.batch_size,
            image_size=args.image_size,
            device="cpu",
            seed=seed,
            num_threads=args.threads,
            augment=[CutMix(alpha=1.0, p=1.0, mode="batch")] if cutmix else (),
        )
    seen = soft_rows = 0
    start = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        if ours is not None:
            ours.set_epoch(epoch)
            batches = ((b.images, _dense(b.target, k)) for b in ours)
        else:
            batches = torchvision_batches(data["train"], args, seed, epoch, cutmix, k)
        for images, target in batches:
            loss = torch.sum(-target * F.log_softmax(model(images), 1), 1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(images)
            soft_rows += int((target.max(1).values < 1).sum())
        sched.step()
    correct, total = evaluate(model, data["val"], args.image_size)
    return {
        "side": side,
        "setting": setting,
        "seed": seed,
        "top1": correct / total,
        "val_images": total,
        "train_images_seen": seen,
        "mixed_target_rows": soft_rows,
        "seconds": round(time.perf_counter() - start, 2),
    }


def _dense(target: torch.Tensor, k: int) -> torch.Tensor:
    return target if target.ndim == 2 else F.one_hot(target.long(), k).float()


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per setting: mean/min/max top-1 per side, the noise band and the parity verdict."""
    out = {}
    for setting in SETTINGS:
        sides = {}
        for side in ("torchvision", "dali"):
            top = [r["top1"] for r in runs if r["setting"] == setting and r["side"] == side]
            if top:
                sides[side] = {"mean": float(np.mean(top)), "min": min(top), "max": max(top)}
        if len(sides) < 2:
            continue
        band = max(s["max"] - s["min"] for s in sides.values())
        diff = sides["dali"]["mean"] - sides["torchvision"]["mean"]
        out[setting] = {
            **sides,
            "difference": diff,
            "noise_band": band,
            "within_band": abs(diff) <= band,
        }
    return out


def machine() -> dict[str, Any]:
    """The machine and software behind the figures."""
    import torchvision

    cpu = platform.processor()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next(ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        import nvidia.dali as dali

        dali_version = dali.__version__
    except ImportError:
        dali_version = None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            check=False,
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "dali": dali_version,
        "numpy": np.__version__,
        "torch_threads": torch.get_num_threads(),
        "git_commit": commit,
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def build_parser() -> argparse.ArgumentParser:
    """The command line (defaults: the published run, about 10 minutes on 2 CPU cores)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="JSON file to write")
    ap.add_argument("--data", type=Path, help="sample data root (default: generate in a tmp dir)")
    ap.add_argument("--classes", type=int, default=20)
    ap.add_argument("--train-per-class", type=int, default=12)
    ap.add_argument("--val-per-class", type=int, default=10)
    ap.add_argument(
        "--source-size",
        type=int,
        nargs=2,
        default=(96, 144),
        help="side range of the generated JPEGs in pixels",
    )
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="torch and DALI CPU threads")
    ap.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS))
    return ap


def main(argv: list[str] | None = None) -> int:
    """Generate the sample data, train every (setting, seed, side), write the JSON."""
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    from dali_gridaug.tools import make_sample_dataset

    with tempfile.TemporaryDirectory() as tmp:
        root = args.data or Path(tmp)
        data = make_sample_dataset(
            root,
            num_classes=args.classes,
            train_per_class=args.train_per_class,
            val_per_class=args.val_per_class,
            size_range=tuple(args.source_size),
        )
        runs = []
        for setting in args.settings:
            for seed in range(args.seeds):
                for side in ("torchvision", "dali"):
                    run = train_once(side, setting, seed, data, args)
                    print(json.dumps(run), flush=True)
                    runs.append(run)
    result = {
        "description": __doc__.split("\n\n")[0].replace("\n", " "),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "summary": summarize(runs),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
