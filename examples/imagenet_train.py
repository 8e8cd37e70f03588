"""Train an ImageNet-style classifier with dali-gridaug's DALI loader: a plain PyTorch script
in the style of torchvision's classification reference.

Single process::

    python examples/imagenet_train.py DATA --arch resnet50 --mix cutmix

Several processes (one per GPU, or CPU ranks with gloo)::

    torchrun --nproc_per_node 8 examples/imagenet_train.py DATA --mix gridmix

``DATA`` holds ``train/`` and ``val/`` ImageFolder trees. With a mixing augmentation the
loader's ``batch.target`` is a soft target ``(B, K)`` float32 and the loss is the cross
entropy against it (``nn.CrossEntropyLoss`` takes class probabilities); accuracy is always
measured against ``batch.labels``, the hard labels of the un-mixed images. Each rank reads
its own shard of the data (DALI shards by ``torch.distributed`` rank); validation sums the
counts over ranks, so every val image is counted exactly once.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torchvision
from torch import nn

from dali_gridaug import CutMix, GridMask, GridMix, create_loader

MIXES = {
    "none": lambda: [],
    "cutmix": lambda: [CutMix()],
    "gridmix": lambda: [GridMix()],
    "gridmask": lambda: [GridMask()],
}


def get_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments (torchvision reference names where they exist)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("data", type=Path, help="folder holding train/ and val/")
    p.add_argument("-a", "--arch", default="resnet18", help="a torchvision.models name")
    p.add_argument("--epochs", type=int, default=90)
    p.add_argument("-b", "--batch-size", type=int, default=256, help="per rank")
    p.add_argument("--lr", type=float, default=0.1, help="for a global batch of 256")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--wd", type=float, default=1e-4, help="weight decay")
    p.add_argument("-j", "--workers", type=int, default=0, help="DALI threads (0: default)")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--mix", choices=sorted(MIXES), default="none", help="in-graph augmentation")
    p.add_argument("--num-classes", type=int, default=None, help="default: the dataset's")
    p.add_argument("--max-steps", type=int, default=0, help="per epoch; 0: the whole epoch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto")
    p.add_argument("--output-dir", type=Path, default=None, help="checkpoints (rank 0)")
    p.add_argument("--print-freq", type=int, default=50)
    return p.parse_args(argv)


def setup_distributed() -> tuple[int, int, int]:
    """Join the process group torchrun describes; ``(rank, world, local_rank)``."""
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return 0, 1, 0
    local = int(os.environ["LOCAL_RANK"])
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size(), local


def all_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum numbers over ranks (one all-reduce; a no-op in a single process)."""
    t = torch.tensor(values, dtype=torch.float64, device=device)
    if dist.is_initialized():
        dist.all_reduce(t)
    return t.tolist()


def train_one_epoch(model, loader, criterion, optimizer, epoch, args, device) -> dict:
    """One epoch (or ``--max-steps``); loss and top-1 against the hard labels, over ranks."""
    model.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.float64, device=device)
    seen, start = 0, time.perf_counter()
    loader.set_epoch(epoch)  # epoch schedules and the parameter stream follow the epoch
    for step, batch in enumerate(loader):
        images = batch.images.to(device, non_blocking=True)
        target = batch.target.to(device, non_blocking=True)  # (B,) or soft (B, K)
        output = model(images)
        loss = criterion(output, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        # no host sync per step: accumulate on the device, read once per epoch
        loss_sum += loss.detach() * len(batch)
        correct += (output.argmax(1) == batch.labels.to(device)).sum()
        seen += len(batch)
        if args.print_freq and step % args.print_freq == 0 and dist_rank() == 0:
            print(f"epoch {epoch} step {step}/{len(loader)}", flush=True)
        if args.max_steps and step + 1 >= args.max_steps:
            break  # the loader starts the next epoch whole
    loss_total, correct_total, n = all_sum([float(loss_sum), float(correct), seen], device)
    return {
        "train_loss": loss_total / n,
        "train_top1": 100 * correct_total / n,
        "train_images": int(n),
        "seconds": time.perf_counter() - start,
    }


@torch.no_grad()
def evaluate(model, loader, criterion, device) -> dict:
    """Loss, top-1 and top-5 (%) over the whole val set, summed over the ranks' shards."""
    model.eval()
    stats = torch.zeros(4, dtype=torch.float64, device=device)  # loss, top1, top5, count
    for batch in loader:
        images = batch.images.to(device, non_blocking=True)
        labels = batch.labels.to(device, non_blocking=True)
        output = model(images)
        top5 = output.topk(min(5, output.shape[1]), dim=1).indices
        stats[0] += criterion(output, labels) * len(batch)
        stats[1] += (top5[:, 0] == labels).sum()
        stats[2] += (top5 == labels[:, None]).any(dim=1).sum()
        stats[3] += len(batch)
    loss, top1, top5, n = all_sum(stats.tolist(), device)
    return {
        "val_loss": loss / n,
        "val_top1": 100 * top1 / n,
        "val_top5": 100 * top5 / n,
        "val_images": int(n),
    }


def dist_rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if dist.is_initialized() else 0


def main(argv: list[str] | None = None) -> list[dict]:
    """Train and evaluate; returns one metrics row per epoch (rank 0 prints them as JSON)."""
    args = get_args(argv)
    rank, world, local = setup_distributed()
    common = {
        "batch_size": args.batch_size,
        "image_size": args.image_size,
        "seed": args.seed,
        "device": args.device,
        "num_threads": args.workers,
    }
    val_loader = create_loader(args.data / "val", train=False, **common)
    num_classes = args.num_classes or len(val_loader.dataset.classes)
    train_loader = create_loader(
        args.data / "train", augment=MIXES[args.mix](), num_classes=num_classes, **common
    )
    device = train_loader.device if train_loader.device.type == "cuda" else torch.device("cpu")
    torch.manual_seed(args.seed)
    model = torchvision.models.get_model(args.arch, num_classes=num_classes).to(device)
    if world > 1:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[local] if device.type == "cuda" else None
        )
    criterion = nn.CrossEntropyLoss()
    lr = args.lr * args.batch_size * world / 256
    optimizer = torch.optim.SGD(
        model.parameters(), lr=lr, momentum=args.momentum, weight_decay=args.wd
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    if rank == 0:
        sizes = f"{len(train_loader.dataset)} train / {len(val_loader.dataset)} val images"
        print(f"{args.arch}: {num_classes} classes, {sizes}, {world} rank(s) on {device}")
    history = []
    for epoch in range(args.epochs):
        row = {
            "epoch": epoch,
            **train_one_epoch(model, train_loader, criterion, optimizer, epoch, args, device),
        }
        scheduler.step()
        row.update(evaluate(model, val_loader, criterion, device))
        history.append(row)
        if rank == 0:
            print(json.dumps(row), flush=True)
            if args.output_dir is not None:
                args.output_dir.mkdir(parents=True, exist_ok=True)
                state = {
                    "epoch": epoch + 1,
                    "arch": args.arch,
                    "optimizer": optimizer.state_dict(),
                    "model": getattr(model, "module", model).state_dict(),
                }
                torch.save(state, args.output_dir / f"checkpoint_{epoch}.pth")
    if dist.is_initialized():
        dist.destroy_process_group()
    return history


if __name__ == "__main__":
    main()
