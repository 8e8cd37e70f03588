r"""``dali-gridaug train`` / ``python -m dali_gridaug.train``: train a torchvision model from a
recipe, on one process or under ``torchrun`` (DDP).

Data flow of one step: DALI loader (this rank's shard, augmentations in the graph) → optional
Keep stage (model-driven, post-loader) → model (AMP, channels_last) → loss (CE, soft-target CE or
GridMix's global + local loss) → SGD step → per-step learning-rate schedule.

Everything a run needs to continue is in its checkpoints (``OUT/checkpoints/``): model,
optimizer, scheduler, GradScaler, epoch and step within the epoch, every rank's RNG states and
DALI pipeline checkpoint (reader position and operator random state), and the metrics so far.
A run killed mid-epoch and resumed with ``--resume auto`` therefore sees the same samples in
the same order, with the same augmentation parameters, as if it had not stopped. Checkpoint
files are written atomically (temporary file in the same folder, fsync, ``os.replace``).

Outputs in ``OUT``: ``metrics.csv`` and ``metrics.json`` (one row per epoch: loss, lr, top-1,
top-5, images/s, epoch time), ``curves.png``, ``recipe.json`` (the resolved recipe), and with
``--log-samples`` ``samples/rank<r>.tsv`` (``epoch  step  id,id,…`` per step).

Example::

    torchrun --nproc-per-node 8 -m dali_gridaug.train --train /data/train --val /data/val \
        --recipe imagenet_gridmask --amp bf16 --channels-last --out runs/gridmask
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import io
import json
import math
import os
import random
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dali_gridaug.recipes import Recipe, RecipeError, load_recipe, parse_value

CHECKPOINT_DIR = "checkpoints"
_CKPT_RE = re.compile(r"^ckpt-e(\d{4,})-s(\d{6,})\.pt$")


# -- command line -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``train`` argument parser; recipe values are the defaults the flags override."""
    ap = argparse.ArgumentParser(
        prog="dali-gridaug train",
        description="Train a torchvision model with a DALI loader from a recipe "
        "(torchrun-ready: reads RANK, WORLD_SIZE, LOCAL_RANK).",
    )
    data = ap.add_argument_group("data")
    data.add_argument("--train", required=True, help="training ImageFolder root (or file list)")
    data.add_argument("--val", help="validation ImageFolder root (no evaluation without it)")
    data.add_argument("--image-size", type=int, help="crop side (recipe: data.image_size)")
    data.add_argument(
        "--batch-size", type=int, help="global batch size, split over ranks (data.batch_size)"
    )
    data.add_argument("--workers", type=int, help="DALI CPU threads per rank")
    recipe = ap.add_argument_group("recipe")
    recipe.add_argument(
        "--recipe", default="demo", help="packaged recipe name or a .toml path (default: demo)"
    )
    recipe.add_argument("--model", help="torchvision model name (model.name)")
    recipe.add_argument("--epochs", type=int, help="schedule.epochs")
    recipe.add_argument("--lr", type=float, help="peak learning rate (optim.lr)")
    recipe.add_argument("--weight-decay", type=float, help="optim.weight_decay")
    recipe.add_argument("--warmup-epochs", type=float, help="schedule.warmup_epochs")
    recipe.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override any recipe value, VALUE in TOML syntax (repeatable), e.g. "
        "--set optim.nesterov=true --set schedule.milestones=[30,60] --set augment[0].d=[16,40]",
    )
    run = ap.add_argument_group("run")
    run.add_argument("--out", default="runs/train", help="output folder (default: runs/train)")
    run.add_argument(
        "--resume",
        metavar="auto|PATH",
        help="'auto': continue from the latest checkpoint in OUT (start fresh if none); "
        "or a checkpoint file",
    )
    run.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto")
    run.add_argument("--amp", choices=("bf16", "fp16", "none"), default="none")
    run.add_argument("--channels-last", action="store_true", help="NHWC memory format")
    run.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across ranks (GPU)")
    run.add_argument("--eval-every", type=int, default=1, help="evaluate every N epochs (and last)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--ckpt-every-steps", type=int, default=0, help="also checkpoint mid-epoch")
    run.add_argument("--keep-last", type=int, default=3, help="checkpoints kept (latest first)")
    run.add_argument("--torch-threads", type=int, help="torch CPU threads per rank")
    run.add_argument(
        "--deterministic",
        action="store_true",
        help="torch.use_deterministic_algorithms(True) (bitwise-reproducible CPU runs)",
    )
    run.add_argument(
        "--log-samples", action="store_true", help="write the sample ids of every step"
    )
    run.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    return ap


def resolve_recipe(args: argparse.Namespace) -> Recipe:
    """The recipe named by ``--recipe`` with the command-line overrides applied."""
    recipe = load_recipe(args.recipe)
    values: dict[str, Any] = {
        "model.name": args.model,
        "schedule.epochs": args.epochs,
        "optim.lr": args.lr,
        "optim.weight_decay": args.weight_decay,
        "schedule.warmup_epochs": args.warmup_epochs,
        "data.batch_size": args.batch_size,
        "data.image_size": args.image_size,
    }
    for item in args.set:
        key, sep, text = item.partition("=")
        if not sep:
            raise RecipeError(f"--set expects SECTION.KEY=VALUE, got {item!r}")
        values[key.strip()] = parse_value(text.strip())
    return recipe.override(values)


# -- distributed setup ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DistEnv:
    """This process's place in the job.

    Attributes:
        rank: global rank.
        world_size: number of processes.
        local_rank: rank on this node (selects the GPU).
        local_world_size: processes on this node (shares the CPU cores).
        device: the torch device this rank computes on.
    """

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup_distributed(device: str) -> DistEnv:
    """Read torchrun's environment, pick the device and join the process group (NCCL on GPU,
    gloo on CPU) when there is more than one process.
    """
    env = os.environ
    world = int(env.get("WORLD_SIZE", "1"))
    rank = int(env.get("RANK", "0"))
    local_rank = int(env.get("LOCAL_RANK", str(rank)))
    local_world = int(env.get("LOCAL_WORLD_SIZE", str(world)))
    use_gpu = device == "gpu" or (device == "auto" and torch.cuda.is_available())
    if use_gpu and not torch.cuda.is_available():
        raise SystemExit("--device gpu: no CUDA device is usable")
    if use_gpu:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(
            backend="nccl" if use_gpu else "gloo",
            **({"device_id": dev} if use_gpu else {}),
        )
    return DistEnv(rank, world, local_rank, local_world, dev)


def _all_sum(env: DistEnv, values: Sequence[float]) -> list[float]:
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=env.device)
    if env.distributed:
        torch.distributed.all_reduce(t)
    return t.tolist()


def _gather(env: DistEnv, obj: Any) -> list[Any]:
    if not env.distributed:
        return [obj]
    out: list[Any] = [None] * env.world_size
    torch.distributed.all_gather_object(out, obj)
    return out


# -- model, optimizer, schedule, loss ----------------------------------------------------------


def build_model(recipe: Recipe, num_classes: int) -> nn.Module:
    """The recipe's torchvision model with ``num_classes`` outputs, randomly initialised;
    wrapped in :class:`~dali_gridaug.models.GridMixHead` for the GridMix loss and in
    :class:`~dali_gridaug.saliency.EarlyHeadResNet` for Keep's early-head saliency.
    """
    import torchvision

    cfg = recipe.model
    kwargs: dict[str, Any] = {"weights": None, "num_classes": num_classes}
    if cfg.zero_init_residual:
        kwargs["zero_init_residual"] = True
    try:
        model = torchvision.models.get_model(cfg.name, **kwargs)
    except ValueError as e:
        raise RecipeError(f"recipe {recipe.name}: `model.name` {cfg.name!r}: {e}") from None
    if cfg.cifar_stem:
        if not isinstance(model, torchvision.models.ResNet):
            raise RecipeError(f"recipe {recipe.name}: `model.cifar_stem` needs a ResNet")
        model.conv1 = nn.Conv2d(3, model.conv1.out_channels, 3, 1, 1, bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
        model.maxpool = nn.Identity()
    if recipe.loss_kind == "gridmix":
        from dali_gridaug.models import GridMixHead

        model = GridMixHead(model, num_classes, recipe.mixer.n)  # type: ignore[union-attr]
    if recipe.keep is not None and recipe.keep.saliency == "early":
        from dali_gridaug.saliency import EarlyHeadResNet

        model = EarlyHeadResNet(model, num_classes)
    return model


def build_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.SGD:
    """SGD with momentum; with ``no_wd_bn_bias`` the 1-D parameters (BN, biases) get no decay."""
    cfg = recipe.optim
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.no_wd_bn_bias:
        groups: list[dict[str, Any]] = [
            {"params": [p for p in params if p.ndim > 1], "weight_decay": cfg.weight_decay},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
        ]
    else:
        groups = [{"params": params, "weight_decay": cfg.weight_decay}]
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)


class LRFactor:
    """Learning-rate multiplier of optimizer step ``t`` (for ``LambdaLR``, stepped per batch).

    Linear warmup over the first ``warmup_epochs`` (from ``1/warmup_steps`` to 1), then
    ``gamma ** (milestones passed)`` (step) or a half cosine from 1 to ``min_lr / lr``
    (cosine). Milestones are epochs; the decay happens at the first step of that epoch.
    A plain object (not a lambda), so the scheduler's ``state_dict`` saves it.
    """

    def __init__(self, recipe: Recipe, steps_per_epoch: int) -> None:
        s = recipe.schedule
        self.kind = s.name
        self.steps_per_epoch = steps_per_epoch
        self.total = s.epochs * steps_per_epoch
        self.warmup = round(s.warmup_epochs * steps_per_epoch)
        self.milestones = [m * steps_per_epoch for m in s.milestones]
        self.gamma = s.gamma
        self.final = s.min_lr / recipe.optim.lr

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        if self.kind == "step":
            return self.gamma ** sum(step >= m for m in self.milestones)
        t = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return self.final + (1 - self.final) * 0.5 * (1 + math.cos(math.pi * t))


class Criterion:
    """The recipe's loss on a model output and a :class:`~dali_gridaug.batch.Batch`.

    ``gridmix``: GridMix's soft-target CE + γ·Σ cells CE (the model returns ``(logits, local)``);
    otherwise soft-target CE when ``batch.target`` is ``(B, K)`` and CE (with label smoothing)
    when it holds hard labels. With Keep's early head the model returns ``(logits, early)`` and
    ``early_weight``·CE(early, target) is added.
    """

    def __init__(self, recipe: Recipe) -> None:
        from dali_gridaug.loss import GridMixLoss, soft_target_cross_entropy

        self.kind = recipe.loss_kind
        self.smoothing = recipe.loss.label_smoothing
        self.soft = soft_target_cross_entropy
        self.gridmix = GridMixLoss(recipe.loss.gamma) if self.kind == "gridmix" else None
        keep = recipe.keep
        self.early = keep.early_weight if keep is not None and keep.saliency == "early" else None

    def __call__(self, output: Any, batch: Any) -> torch.Tensor:
        """The scalar loss of ``output`` (the model's return value) for ``batch``."""
        target = batch.target
        if self.gridmix is not None:
            logits, local = output
            return self.gridmix(logits, local, target, batch.patch_labels)
        extra = None
        if self.early is not None:
            output, extra = output
        if target.ndim == 2:
            loss = self.soft(output, target)
        else:
            loss = F.cross_entropy(output.float(), target, label_smoothing=self.smoothing)
        if extra is not None:
            loss = loss + self.early * F.cross_entropy(extra.float(), target)
        return loss


def build_keep(recipe: Recipe, model: nn.Module, generator: torch.Generator) -> Any:
    """The recipe's Keep stage (``[keep]``), or ``None``. ``model`` is the bare model (not
    the DDP wrapper): saliency needs no gradient synchronisation.
    """
    if recipe.keep is None:
        return None
    from dali_gridaug.saliency import KeepStage

    k = recipe.keep
    return KeepStage(
        model,
        k.method,
        tau=k.tau,
        length=k.length,
        saliency=k.saliency,
        alpha=k.alpha,
        draws=k.draws,
        generator=generator,
    )


# -- checkpoints ------------------------------------------------------------------------------


def checkpoint_name(epoch: int, step: int) -> str:
    """``ckpt-e0003-s000120.pt``: ``step`` batches of ``epoch`` done (``s000000``: the epoch
    has not started). Names sort in training order.
    """
    return f"ckpt-e{epoch:04d}-s{step:06d}.pt"


def list_checkpoints(folder: Path) -> list[Path]:
    """Checkpoint files in ``folder``, oldest first (temporary files are ignored)."""
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = _CKPT_RE.match(p.name)
        if m:
            found.append(((int(m.group(1)), int(m.group(2))), p))
    return [p for _, p in sorted(found)]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one:
    a temporary file in the same folder, fsync, ``os.replace``, fsync of the folder.
    """
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    with contextlib.suppress(OSError):  # not every filesystem can fsync a directory
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def save_checkpoint(state: Mapping[str, Any], folder: Path, keep_last: int) -> Path:
    """Write ``state`` atomically as ``checkpoint_name(epoch, step)`` and delete all but the
    ``keep_last`` newest checkpoints (and temporary files a killed writer left behind).
    """
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(".ckpt-*.tmp*"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    path = folder / checkpoint_name(state["epoch"], state["step"])
    buffer = io.BytesIO()
    torch.save(dict(state), buffer)
    atomic_write_bytes(path, buffer.getvalue())
    for old in list_checkpoints(folder)[:-keep_last] if keep_last > 0 else []:
        with contextlib.suppress(FileNotFoundError):
            old.unlink()
    return path


def find_resume(resume: str | None, out: Path) -> Path | None:
    """The checkpoint ``--resume`` names: ``auto`` → the latest in ``OUT/checkpoints`` (None if
    there is none), a path → that file.
    """
    if resume is None:
        return None
    if resume == "auto":
        found = list_checkpoints(out / CHECKPOINT_DIR)
        return found[-1] if found else None
    path = Path(resume)
    if not path.is_file():
        raise SystemExit(f"--resume: checkpoint {resume!r} does not exist")
    return path


def rng_state(env: DistEnv, keep_generator: torch.Generator | None) -> dict[str, Any]:
    """This rank's random states (torch CPU/CUDA, NumPy, Python, Keep's generator), as plain
    bytes and numbers (they travel through ``all_gather_object``).
    """

    def raw(t: torch.Tensor | None) -> bytes | None:
        return None if t is None else t.cpu().numpy().tobytes()

    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": raw(torch.get_rng_state()),
        "cuda": raw(torch.cuda.get_rng_state(env.device)) if env.device.type == "cuda" else None,
        "numpy": [kind, keys.tobytes(), int(pos), int(has_gauss), float(gauss)],
        "python": random.getstate(),
        "keep": raw(keep_generator.get_state()) if keep_generator is not None else None,
    }


def set_rng_state(
    state: Mapping[str, Any], env: DistEnv, keep_generator: torch.Generator | None
) -> None:
    """Restore what :func:`rng_state` saved."""

    def tensor(b: bytes) -> torch.Tensor:
        return torch.frombuffer(bytearray(b), dtype=torch.uint8)

    torch.set_rng_state(tensor(state["torch"]))
    if state["cuda"] is not None and env.device.type == "cuda":
        torch.cuda.set_rng_state(tensor(state["cuda"]), env.device)
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.frombuffer(keys, np.uint32).copy(), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if state["keep"] is not None and keep_generator is not None:
        keep_generator.set_state(tensor(state["keep"]))


# -- metrics ----------------------------------------------------------------------------------

METRIC_FIELDS = (
    "epoch",
    "train_loss",
    "lr",
    "val_loss",
    "top1",
    "top5",
    "images_per_s",
    "epoch_time_s",
    "steps",
    "val_images",
)


def write_metrics(rows: Sequence[Mapping[str, Any]], out: Path) -> None:
    """``metrics.csv`` and ``metrics.json`` (one row per epoch) and ``curves.png``."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=METRIC_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in METRIC_FIELDS})
    atomic_write_bytes(out / "metrics.csv", text.getvalue().encode())
    atomic_write_bytes(out / "metrics.json", json.dumps(list(rows), indent=1).encode())
    plot_curves(rows, out / "curves.png")


def plot_curves(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Loss (train, val) and accuracy (top-1, top-5) against epochs completed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:  # the `plot` extra is optional
        return
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    x = [r["epoch"] + 1 for r in rows]

    def series(key: str) -> tuple[list[float], list[float]]:
        pts = [(xi, r[key]) for xi, r in zip(x, rows, strict=True) if r.get(key) is not None]
        return [p[0] for p in pts], [p[1] for p in pts]

    ax_loss.plot(*series("train_loss"), "o-", label="train")
    ax_loss.plot(*series("val_loss"), "s-", label="val")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.plot(*series("top1"), "o-", label="top-1")
    ax_acc.plot(*series("top5"), "s-", label="top-5")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="validation accuracy", ylim=(0, 100))
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


@torch.no_grad()
def evaluate(
    model: nn.Module, loader: Any, env: DistEnv, autocast: Callable[[], Any], channels_last: bool
) -> dict[str, float]:
    """Exact top-1/top-5 and mean CE over the whole validation set: each rank evaluates its
    shard (DALI drops the shard padding), the counts are summed over ranks.

    ``model`` is the bare model (no DDP: ranks may see different numbers of batches).
    """
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=env.device)  # loss, top1, top5, n
    for batch in loader:
        images = batch.images
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast():
            logits = model(images)
        logits = logits.float()
        labels = batch.labels
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices == labels[:, None]
        sums += torch.stack(
            [
                F.cross_entropy(logits, labels, reduction="sum").double(),
                top[:, 0].sum().double(),
                top.any(1).sum().double(),
                torch.tensor(float(labels.numel()), dtype=torch.float64, device=env.device),
            ]
        )
    if env.distributed:
        torch.distributed.all_reduce(sums)
    model.train(was_training)
    loss, c1, c5, n = sums.tolist()
    return {
        "val_loss": loss / max(n, 1),
        "top1": 100.0 * c1 / max(n, 1),
        "top5": 100.0 * c5 / max(n, 1),
        "val_images": int(n),
    }


class SampleLog:
    """``OUT/samples/rank<r>.tsv``: ``epoch<TAB>step<TAB>id,id,…`` per training step, one
    line per write (a killed run leaves whole lines, at worst a partial last one).
    """

    def __init__(self, out: Path, rank: int) -> None:
        folder = out / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        self.file = open(folder / f"rank{rank}.tsv", "a", buffering=1)  # noqa: SIM115

    def write(self, epoch: int, step: int, index: torch.Tensor) -> None:
        ids = ",".join(str(i) for i in index.tolist())
        self.file.write(f"{epoch}\t{step}\t{ids}\n")

    def close(self) -> None:
        self.file.close()


def read_sample_log(path: Path) -> Iterator[tuple[int, int, list[int]]]:
    """Parse a :class:`SampleLog` file, skipping a torn last line."""
    for line in path.read_text().splitlines(keepends=True):
        if not line.endswith("\n"):
            break
        epoch, step, ids = line.rstrip("\n").split("\t")
        yield int(epoch), int(step), [int(i) for i in ids.split(",") if i]


# -- the training run -------------------------------------------------------------------------


class Trainer:
    """One training run on this rank: builds loaders, model and optimizer, resumes if asked,
    trains, evaluates, checkpoints and writes metrics.
    """

    def __init__(self, args: argparse.Namespace, recipe: Recipe, env: DistEnv) -> None:
        from dali_gridaug.loader import create_loader

        self.args, self.recipe, self.env = args, recipe, env
        self.out = Path(args.out)
        self.ckpt_dir = self.out / CHECKPOINT_DIR
        dev = env.device
        data = recipe.data
        if data.batch_size % env.world_size:
            raise SystemExit(
                f"global batch size {data.batch_size} is not divisible by the "
                f"{env.world_size} ranks"
            )
        self.batch_size = data.batch_size // env.world_size
        threads = max(1, (os.cpu_count() or 1) // env.local_world_size)
        if dev.type == "cpu":
            torch.set_num_threads(args.torch_threads or threads)
        if args.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read by cuBLAS lazily
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        elif dev.type == "cuda":
            torch.backends.cudnn.benchmark = True

        resume_path = find_resume(args.resume, self.out)
        if resume_path is None and list_checkpoints(self.ckpt_dir):
            raise SystemExit(
                f"{self.ckpt_dir} already holds checkpoints: pass --resume auto to continue "
                "that run, or choose another --out"
            )
        ckpt = None
        if resume_path is not None:
            ckpt = torch.load(resume_path, map_location="cpu", weights_only=True)
            if ckpt["world_size"] != env.world_size:
                raise SystemExit(
                    f"{resume_path} was written by {ckpt['world_size']} ranks; resume it with "
                    f"the same number (got {env.world_size}): each rank restores its own "
                    "DALI reader position"
                )
            changed = _pipeline_changes(ckpt["recipe"], recipe.to_dict())
            if changed:
                raise SystemExit(
                    f"{resume_path} was trained with other data/augmentation settings "
                    f"({', '.join(changed)}); its DALI reader position cannot be restored into "
                    "a different pipeline"
                )
        rank_state = ckpt["ranks"][env.rank] if ckpt is not None else None

        loader_kwargs: dict[str, Any] = dict(
            image_size=data.image_size,
            device="gpu" if dev.type == "cuda" else "cpu",
            seed=args.seed,
            num_threads=args.workers or min(8, threads),
            mean=data.mean,
            std=data.std,
        )
        self.train_loader = create_loader(
            args.train,
            batch_size=self.batch_size,
            train=True,
            augment=recipe.augment,
            auto_augment=data.auto_augment or None,
            keep_clean=recipe.keep is not None and recipe.keep.method == "paste",
            checkpointing=True,
            resume=rank_state["loader"] if rank_state is not None else None,
            **loader_kwargs,
        )
        self.val_loader = None
        if args.val:
            val_batch = max(1, (data.val_batch_size or data.batch_size) // env.world_size)
            self.val_loader = create_loader(
                args.val, batch_size=val_batch, train=False, **loader_kwargs
            )
            if self.val_loader.classes != self.train_loader.classes:
                raise SystemExit("--train and --val have different class folders")
        self.steps_per_epoch = len(self.train_loader)
        lo, hi = self._min_max(self.steps_per_epoch)
        if lo != hi or lo == 0:
            raise SystemExit(
                f"ranks have {lo}–{hi} steps per epoch; need the same non-zero count on all "
                "(dataset too small for the batch size?)"
            )

        torch.manual_seed(args.seed)  # identical initial weights on every rank
        model = build_model(recipe, self.train_loader.num_classes)
        if args.sync_bn and env.distributed and dev.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model.to(dev)
        if args.channels_last:
            model.to(memory_format=torch.channels_last)
        self.model = model
        self.optimizer = build_optimizer(model, recipe)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, LRFactor(recipe, self.steps_per_epoch)
        )
        self.scaler = torch.amp.GradScaler(dev.type, enabled=args.amp == "fp16")
        self.criterion = Criterion(recipe)
        self.ddp: nn.Module = model
        if env.distributed:
            self.ddp = nn.parallel.DistributedDataParallel(
                model, device_ids=[dev.index] if dev.type == "cuda" else None
            )
        # per-rank streams for anything random after initialisation
        seed = int(np.random.SeedSequence([args.seed, env.rank]).generate_state(1)[0])
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        self.keep_generator = None
        if recipe.keep is not None:
            self.keep_generator = torch.Generator(device=dev).manual_seed(seed + 1)
        self.keep = build_keep(recipe, model, self.keep_generator) if self.keep_generator else None

        self.epoch, self.step = 0, 0
        self.history: list[dict[str, Any]] = []
        self.meter = {"loss_sum": 0.0, "count": 0, "seconds": 0.0}
        if ckpt is not None:
            self._restore(ckpt, rank_state, resume_path)
        self.resumed_from = resume_path
        self.samples = SampleLog(self.out, env.rank) if args.log_samples else None
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.amp)
        self.autocast: Callable[[], Any] = (
            (lambda: torch.autocast(dev.type, dtype=dtype))
            if dtype is not None
            else contextlib.nullcontext
        )

    def _restore(self, ckpt: Mapping[str, Any], rank_state: Mapping[str, Any], path: Path) -> None:
        """Load a checkpoint into the freshly built model, optimizer, scheduler and scaler
        (the loader was built from it already).
        """
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        # the step count from the checkpoint, the schedule itself from the current recipe
        # (identical for an exact resume; lets `--epochs` extend a finished run)
        groups = self.optimizer.param_groups
        self.scheduler.load_state_dict(dict(ckpt["scheduler"], lr_lambdas=[None] * len(groups)))
        factor = self.scheduler.lr_lambdas[0](self.scheduler.last_epoch)
        for group in groups:
            group["lr"] = group["initial_lr"] * factor
        self.scheduler._last_lr = [g["lr"] for g in groups]
        self.scaler.load_state_dict(ckpt["scaler"])
        self.epoch, self.step = ckpt["epoch"], ckpt["step"]
        self.history = list(ckpt["metrics"])
        self.meter = dict(rank_state["meter"])
        set_rng_state(rank_state["rng"], self.env, self.keep_generator)
        if self.train_loader.epoch != self.epoch:
            raise SystemExit(f"{path}: loader state and checkpoint epoch disagree")

    def _min_max(self, value: int) -> tuple[int, int]:
        if not self.env.distributed:
            return value, value
        t = torch.tensor([value, -value], dtype=torch.int64, device=self.env.device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
        return int(t[0]), int(-t[1])

    def log(self, message: str) -> None:
        if self.env.main:
            print(message, file=sys.stderr, flush=True)

    def fit(self) -> list[dict[str, Any]]:
        """Train from the current (epoch, step) to the end; returns the metrics rows."""
        r, env = self.recipe, self.env
        if self.env.main:
            self.out.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.out / "recipe.json", json.dumps(r.to_dict(), indent=1).encode())
        where = f", resumed from {self.resumed_from.name}" if self.resumed_from else ""
        self.log(
            f"recipe {r.name}: {r.model.name}, {r.schedule.epochs} epochs × "
            f"{self.steps_per_epoch} steps, batch {r.data.batch_size} on {env.world_size} "
            f"rank(s) ({env.device.type}), loss {r.loss_kind}{where}"
        )
        for epoch in range(self.epoch, r.schedule.epochs):
            self.train_epoch(epoch)
            row = self.finish_epoch(epoch)
            line = f"epoch {epoch}: loss {row['train_loss']:.4f}, lr {row['lr']:.4g}"
            if row["images_per_s"] is not None:
                line += f", {row['images_per_s']:.1f} img/s"
            if row["top1"] is not None:
                line += f", top-1 {row['top1']:.2f}%, top-5 {row['top5']:.2f}%"
            self.log(line)
        if self.samples is not None:
            self.samples.close()
        return self.history

    def train_epoch(self, epoch: int) -> None:
        """Train the remaining steps of ``epoch``, checkpointing every ``--ckpt-every-steps``."""
        from tqdm import tqdm

        args, loader = self.args, self.train_loader
        loader.set_epoch(epoch)
        self.ddp.train()
        first = self.step if epoch == self.epoch else 0
        self.epoch, self.step = epoch, first
        if first == 0:
            self.meter = {"loss_sum": 0.0, "count": 0, "seconds": 0.0}
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.env.device)
        count = 0
        bar = tqdm(
            total=self.steps_per_epoch,
            initial=first,
            desc=f"epoch {epoch}",
            unit="step",
            disable=not (self.env.main and args.progress),
            dynamic_ncols=True,
            file=sys.stderr,
        )
        start = time.perf_counter()
        for batch in loader:
            if self.keep is not None:
                batch = self.keep(batch)
            images = batch.images
            if args.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with self.autocast():
                output = self.ddp(images)
                loss = self.criterion(output, batch)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            loss_sum += loss.detach().double() * len(batch)
            count += len(batch)
            if self.samples is not None:
                self.samples.write(epoch, self.step, batch.index)
            self.step += 1
            bar.update(1)
            if self.step % 10 == 0 or self.step == self.steps_per_epoch:
                bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{self.current_lr():.3g}")
            every = args.ckpt_every_steps
            if every and self.step % every == 0 and self.step < self.steps_per_epoch:
                self.meter_add(loss_sum, count, time.perf_counter() - start)
                loss_sum.zero_()
                count, start = 0, time.perf_counter()
                self.save(epoch, self.step)
        bar.close()
        self.meter_add(loss_sum, count, time.perf_counter() - start)

    def meter_add(self, loss_sum: torch.Tensor, count: int, seconds: float) -> None:
        self.meter["loss_sum"] += float(loss_sum)
        self.meter["count"] += count
        self.meter["seconds"] += seconds

    def current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def finish_epoch(self, epoch: int) -> dict[str, Any]:
        """Reduce the epoch's meters over ranks, evaluate, write metrics, checkpoint."""
        loss_sum, count, seconds = _all_sum(
            self.env, [self.meter["loss_sum"], self.meter["count"], self.meter["seconds"]]
        )
        seconds /= self.env.world_size
        row: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": loss_sum / max(count, 1),
            "lr": self.current_lr(),
            "val_loss": None,
            "top1": None,
            "top5": None,
            "val_images": None,
            "images_per_s": count / seconds if seconds > 0 else None,
            "epoch_time_s": seconds,
            "steps": self.steps_per_epoch,
        }
        last = epoch + 1 == self.recipe.schedule.epochs
        if self.val_loader is not None and ((epoch + 1) % self.args.eval_every == 0 or last):
            row.update(
                evaluate(
                    self.model, self.val_loader, self.env, self.autocast, self.args.channels_last
                )
            )
        self.history = [h for h in self.history if h["epoch"] < epoch] + [row]
        if self.env.main:
            write_metrics(self.history, self.out)
        self.meter = {"loss_sum": 0.0, "count": 0, "seconds": 0.0}
        self.save(epoch + 1, 0)
        return row

    def save(self, epoch: int, step: int) -> None:
        """Checkpoint after ``step`` batches of ``epoch`` (a collective: every rank sends its
        loader position, RNG states and meter to rank 0, which writes the file).
        """
        mine = {
            "loader": self.train_loader.state_dict(),
            "rng": rng_state(self.env, self.keep_generator),
            "meter": dict(self.meter),
        }
        ranks = _gather(self.env, mine)
        if self.env.main:
            state = {
                "format": 1,
                "epoch": epoch,
                "step": step,
                "steps_per_epoch": self.steps_per_epoch,
                "world_size": self.env.world_size,
                "recipe": self.recipe.to_dict(),
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "metrics": self.history,
                "ranks": ranks,
            }
            save_checkpoint(state, self.ckpt_dir, self.args.keep_last)
        if self.env.distributed:
            torch.distributed.barrier()


def _pipeline_changes(saved: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """Recipe values that define the training pipeline and differ between two recipes."""
    changed = [
        f"data.{k}"
        for k in sorted(set(saved.get("data", {})) | set(now.get("data", {})))
        if k != "val_batch_size" and saved.get("data", {}).get(k) != now.get("data", {}).get(k)
    ]
    for key in ("augment", "keep"):
        if saved.get(key) != now.get(key):
            changed.append(key)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``dali-gridaug train`` and ``python -m dali_gridaug.train``."""
    args = build_parser().parse_args(argv)
    for flag in ("eval_every", "keep_last"):
        if getattr(args, flag) < 1:
            raise SystemExit(f"--{flag.replace('_', '-')} must be ≥ 1")
    if args.ckpt_every_steps < 0:
        raise SystemExit("--ckpt-every-steps must be ≥ 0")
    try:
        recipe = resolve_recipe(args)
    except RecipeError as e:
        raise SystemExit(str(e)) from None
    env = setup_distributed(args.device)
    try:
        Trainer(args, recipe, env).fit()
    finally:
        if env.distributed and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
