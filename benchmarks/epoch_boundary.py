"""Epoch-boundary stall of the loader on an ImageNet-sized source (issue 20).

A 1,281,167-line file list (ImageNet-1k train's length) over natural photos (scikit-image's,
cropped to 500×375, q90; the list repeats them). Each round resumes a loader three batches
before the end of an epoch, reads through the boundary into the next epoch, and records

- ``plan_s``: planning an epoch alone (its global permutation and this rank's first step,
  as ``Feed.start`` does), no decoding;
- ``stall_s``: the gap between the epoch's last batch and the next epoch's first, minus the
  median gap between batches inside an epoch (what the boundary adds).

Usage: ``python benchmarks/epoch_boundary.py [--rounds 5] [--batch-size 64] [--threads N]``;
writes ``benchmarks/results/epoch_boundary_<device>.json``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from dali_gridaug import create_loader
from dali_gridaug.bench.data import cache_dir, make_photos
from dali_gridaug.bench.registry import usable_cpus
from dali_gridaug.bench.report import machine, results_dir, write
from dali_gridaug.order import epoch_order

IMAGENET_TRAIN = 1_281_167


def plan(loader: object, epoch: int) -> float:
    """Seconds to plan ``epoch`` as the feed does at its start: the global permutation and
    this rank's first step of it (nothing is decoded; the loader's feed is not touched).
    """
    feed = loader.feed
    t0 = time.perf_counter()
    order = epoch_order(feed.seed, epoch, feed.num_samples, shuffle=True)
    next(feed.split.steps(order, epoch, 0))
    return time.perf_counter() - t0


def main() -> int:
    """Run the rounds, print each, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=usable_cpus())
    args = parser.parse_args()

    photos = make_photos(cache_dir() / "photos-256", 256)
    files = sorted(photos.rglob("*.jpg"))
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "train.txt"
        lines = (f"{files[i % len(files)]} {i % 1000}\n" for i in range(IMAGENET_TRAIN))
        listing.write_text("".join(lines))
        t0 = time.perf_counter()
        loader = create_loader(
            listing,
            batch_size=args.batch_size,
            device="cpu",
            image_size=args.image_size,
            num_threads=args.threads,
            num_classes=1000,
        )
        build_s = time.perf_counter() - t0
        b = args.batch_size
        end = IMAGENET_TRAIN // b * b
        plan_once = plan(loader, 1)
        rounds = []
        for r in range(args.rounds):
            state = dict(loader.state_dict(), epoch=r, position=end - 3 * b)
            loader.load_state_dict(state)
            stamps: list[tuple[int, float]] = []
            for _ in range(2):  # the epoch's last 3 batches, then 4 of the next epoch
                for i, batch in enumerate(loader):
                    stamps.append((batch.epoch, time.perf_counter()))
                    if batch.epoch == r + 1 and i == 3:
                        break
            gaps = [(e, t - s) for (_, s), (e, t) in zip(stamps, stamps[1:], strict=False)]
            boundary = [g for (e, g), (e0, _) in zip(gaps, stamps, strict=False) if e != e0]
            inside = [g for (e, g), (e0, _) in zip(gaps, stamps, strict=False) if e == e0]
            plan_s = plan(loader, r + 2)
            rounds.append(
                {
                    "boundary_gap_s": boundary[0],
                    "median_gap_s": statistics.median(inside),
                    "stall_s": boundary[0] - statistics.median(inside),
                    "plan_s": plan_s,
                }
            )
            print(rounds[-1], flush=True)
    result = {
        "name": "epoch_boundary",
        "command": "python benchmarks/epoch_boundary.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
        "machine": machine("cpu"),
        "source": f"file list of {IMAGENET_TRAIN} lines over {len(files)} photos (500x375 q90)",
        "settings": vars(args),
        "loader_build_s": build_s,
        "first_plan_s": plan_once,
        "rounds": rounds,
        "median_stall_s": statistics.median(r["stall_s"] for r in rounds),
        "median_plan_s": statistics.median(r["plan_s"] for r in rounds),
    }
    write(results_dir() / "epoch_boundary_cpu.json", result)
    print({k: v for k, v in result.items() if k.startswith(("median", "loader", "first"))})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
