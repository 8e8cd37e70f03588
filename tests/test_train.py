"""``dali-gridaug train``: a 2-rank DDP run of the demo recipe learns, evaluates exactly over
the validation set and writes its metrics and plot; every paper recipe's code path (CE, soft
CE, GridMix head + loss, Keep stage, CIFAR stem) trains a step on real DALI pipelines; and the
pieces (schedule, optimizer groups, loss dispatch, overrides) do what the recipe says."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import dali_gridaug
from dali_gridaug.batch import Batch
from dali_gridaug.errors import UsageError
from dali_gridaug.labels import smooth_target
from dali_gridaug.loss import GridMixLoss, soft_target_cross_entropy
from dali_gridaug.recipes import build_criterion, build_model, load_recipe
from dali_gridaug.tools import make_sample_dataset
from dali_gridaug.training.cli import main, parse_config, resolve_recipe
from dali_gridaug.training.metrics import read_sample_log
from dali_gridaug.training.schedule import LRFactor, build_optimizer

PACKAGE_ROOT = str(Path(dali_gridaug.__file__).resolve().parents[1])
NUM_CLASSES = 10


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """10 classes × 40 train / 10 val JPEGs, small (96–160 px) so two CPU ranks are quick."""
    root = tmp_path_factory.mktemp("demo_data")
    return make_sample_dataset(
        root, num_classes=NUM_CLASSES, train_per_class=40, val_per_class=10, size_range=(96, 160)
    )


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """10 classes × 4 train / 2 val: a handful of steps per epoch for the recipe smoke runs."""
    root = tmp_path_factory.mktemp("tiny_data")
    return make_sample_dataset(
        root, num_classes=NUM_CLASSES, train_per_class=4, val_per_class=2, size_range=(72, 110)
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_demo_recipe_two_ranks_learns(demo_data: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "dali_gridaug.training",
        "--train",
        str(demo_data["train"]),
        "--val",
        str(demo_data["val"]),
        "--recipe",
        "demo",
        "--epochs",
        "2",
        "--out",
        str(out),
        "--device",
        "cpu",
        "--workers",
        "1",
        "--torch-threads",
        "1",
        "--no-progress",
        "--log-samples",
    ]
    procs = []
    for rank in range(2):
        env = dict(
            os.environ,
            RANK=str(rank),
            WORLD_SIZE="2",
            LOCAL_RANK=str(rank),
            LOCAL_WORLD_SIZE="2",
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
            PYTHONPATH=os.pathsep.join([PACKAGE_ROOT, os.environ.get("PYTHONPATH", "")]),
        )
        procs.append(
            subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        )
    logs = []
    for p in procs:
        try:
            logs.append(p.communicate(timeout=300)[0].decode(errors="replace"))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 0, log[-4000:]

    rows = json.loads((out / "metrics.json").read_text())
    assert [r["epoch"] for r in rows] == [0, 1]
    chance = 100 / NUM_CLASSES
    assert rows[-1]["top1"] > 3 * chance, rows
    assert rows[-1]["top5"] >= rows[-1]["top1"]
    assert rows[1]["train_loss"] < rows[0]["train_loss"]
    # exact evaluation: the 100 validation images counted once over both ranks' shards
    assert all(r["val_images"] == NUM_CLASSES * 10 for r in rows)
    assert all(r["images_per_s"] > 0 and r["epoch_time_s"] > 0 for r in rows)
    csv_lines = (out / "metrics.csv").read_text().splitlines()
    assert csv_lines[0].startswith("epoch,train_loss,lr,val_loss,top1,top5,images_per_s")
    assert len(csv_lines) == 3
    png = (out / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000

    # each rank trained on its own shard: per epoch, no sample on two ranks or twice
    per_rank = [list(read_sample_log(out / "samples" / f"rank{r}.tsv")) for r in range(2)]
    steps = len(per_rank[0]) // 2
    assert steps == rows[0]["steps"] == 12  # 200 files per rank // 16 per rank
    for epoch in (0, 1):
        ids = [i for log in per_rank for e, _, b in log if e == epoch for i in b]
        assert len(ids) == len(set(ids)) == 2 * steps * 16
        assert set(ids) <= set(range(NUM_CLASSES * 40))
    ckpts = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert ckpts == ["ckpt-e0001-s000000.pt", "ckpt-e0002-s000000.pt"]
    state = torch.load(out / "checkpoints" / ckpts[-1], weights_only=True)
    assert state["format"] == 2 and state["world_size"] == 2 and len(state["ranks"]) == 2
    assert state["global_batch"] == 32 and state["loader"]["epoch"] == 2
    assert state["loader"]["position"] == 0 and state["loader"]["num_samples"] == 400
    assert all(set(r) == {"rng", "meter"} for r in state["ranks"])  # the loader saved once


SMOKE = {
    "imagenet_gridmix": [],
    "imagenet_cutmix": [],
    "imagenet_gridmask": ["--set", "augment[0].d=[16,40]"],
    "imagenet_keepcutmix": [],
    "imagenet_keepautoaugment": ["--set", "keep.length=32"],
    "cifar10_cutout": [],
}


@pytest.mark.parametrize("recipe", sorted(SMOKE))
@pytest.mark.slow
def test_recipe_trains_one_epoch(recipe: str, tiny_data: dict[str, Path], tmp_path: Path) -> None:
    """Each paper recipe's path (loss, head, Keep stage, CIFAR stem) on real pipelines,
    scaled down: ResNet-18, 64 px (CIFAR: 32 px), batch 8, one epoch."""
    size = "32" if recipe.startswith("cifar") else "64"
    argv = [
        "--train",
        str(tiny_data["train"]),
        "--val",
        str(tiny_data["val"]),
        "--recipe",
        recipe,
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--image-size",
        size,
        "--model",
        "resnet18",
        "--out",
        str(tmp_path),
        "--device",
        "cpu",
        "--no-progress",
        *SMOKE[recipe],
    ]
    assert main(argv) == 0
    (row,) = json.loads((tmp_path / "metrics.json").read_text())
    assert math.isfinite(row["train_loss"]) and row["train_loss"] > 0
    assert row["val_images"] == NUM_CLASSES * 2 and row["steps"] == 5
    state = torch.load(tmp_path / "checkpoints" / "ckpt-e0001-s000000.pt", weights_only=True)
    if recipe == "imagenet_gridmix":
        assert any(k.startswith("local.") for k in state["model"])  # GridMix's local head
    assert json.loads((tmp_path / "recipe.json").read_text())["data"]["image_size"] == int(size)


def test_lr_schedules() -> None:
    base = load_recipe("demo")
    step = base.override(
        {
            "schedule.name": "step",
            "schedule.epochs": 10,
            "schedule.warmup_epochs": 1,
            "schedule.milestones": [4, 8],
            "schedule.gamma": 0.1,
        }
    )
    f = LRFactor(step, steps_per_epoch=5)
    assert [f(t) for t in range(5)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert f(19) == 1.0 and f(20) == pytest.approx(0.1) and f(39) == pytest.approx(0.1)
    assert f(40) == pytest.approx(0.01)
    cos = base.override(
        {"schedule.epochs": 10, "schedule.warmup_epochs": 0, "schedule.min_lr": 0.001}
    )
    g = LRFactor(cos, steps_per_epoch=5)
    lr = cos.optim.lr
    assert g(0) == 1.0
    assert g(25) * lr == pytest.approx(0.001 + (lr - 0.001) * 0.5)
    assert g(50) * lr == pytest.approx(0.001)


def test_optimizer_groups() -> None:
    recipe = load_recipe("demo")  # no_wd_bn_bias = true
    model = build_model(recipe, NUM_CLASSES)
    opt = build_optimizer(model, recipe)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == recipe.optim.weight_decay and no_decay["weight_decay"] == 0
    assert all(p.ndim > 1 for p in decay["params"])
    assert all(p.ndim == 1 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    assert opt.defaults["nesterov"] and opt.defaults["momentum"] == 0.9
    plain = build_optimizer(model, recipe.override({"optim.no_wd_bn_bias": False}))
    assert len(plain.param_groups) == 1


def _batch(target: torch.Tensor, labels: torch.Tensor, cells: torch.Tensor | None = None) -> Batch:
    b = labels.shape[0]
    return Batch(
        images=torch.zeros(b, 3, 8, 8),
        target=target,
        labels=labels,
        index=torch.arange(b),
        lam=torch.ones(b),
        partner=torch.arange(b),
        patch_labels=cells,
    )


def test_criterion_dispatch() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(4, NUM_CLASSES, generator=gen)
    labels = torch.tensor([0, 3, 3, 9])
    smooth = load_recipe("demo").override({"loss.label_smoothing": 0.1})
    # smoothing is the loader's one knob (create_loader(label_smoothing=...)): the criterion
    # gets the smoothed target and adds no second smoothing
    assert smooth.loader_config().label_smoothing == 0.1
    smoothed = smooth_target(labels, NUM_CLASSES, 0.1)
    hard = build_criterion(smooth)(logits, _batch(smoothed, labels))
    assert hard == pytest.approx(F.cross_entropy(logits, labels, label_smoothing=0.1).item())
    soft_target = torch.softmax(torch.randn(4, NUM_CLASSES, generator=gen), 1)
    soft = build_criterion(load_recipe("imagenet_cutmix"))(logits, _batch(soft_target, labels))
    assert soft == pytest.approx(soft_target_cross_entropy(logits, soft_target).item())
    local = torch.randn(4, NUM_CLASSES, 4, 4, generator=gen)
    cells = torch.randint(0, NUM_CLASSES, (4, 4, 4), generator=gen)
    gridmix = build_criterion(load_recipe("imagenet_gridmix"))
    gm = gridmix((logits, local), _batch(soft_target, labels, cells))
    assert gm == pytest.approx(GridMixLoss(0.15)(logits, local, soft_target, cells).item())


def test_build_model_variants() -> None:
    x = torch.randn(2, 3, 32, 32)
    cifar = build_model(load_recipe("cifar10_cutout").override({"model.name": "resnet18"}), 10)
    assert cifar.conv1.kernel_size == (3, 3) and cifar.conv1.stride == (1, 1)
    assert isinstance(cifar.maxpool, torch.nn.Identity)
    gm = build_model(load_recipe("imagenet_gridmix").override({"model.name": "resnet18"}), 10)
    gm.train()
    logits, local = gm(x)
    assert logits.shape == (2, 10) and local.shape == (2, 10, 4, 4)
    gm.eval()
    assert gm(x).shape == (2, 10)
    early = build_model(
        load_recipe("imagenet_keepcutmix").override(
            {"model.name": "resnet18", "keep.saliency": "early"}
        ),
        10,
    )
    assert callable(early.early_logits) and early.early_logits(x).shape == (2, 10)


def test_command_line_overrides_recipe() -> None:
    args = parse_config(
        [
            "--train",
            "t",
            "--recipe",
            "imagenet_gridmask",
            "--epochs",
            "3",
            "--lr",
            "0.4",
            "--batch-size",
            "64",
            "--image-size",
            "128",
            "--model",
            "resnet18",
            "--set",
            "optim.nesterov=true",
            "--set",
            "augment[0].d=[32,96]",
            "--set",
            "schedule.milestones=[1,2]",
        ]
    )
    r = resolve_recipe(args)
    assert (r.schedule.epochs, r.optim.lr) == (3, 0.4)
    assert (r.data.batch_size, r.data.options["image_size"]) == (64, 128)
    assert r.model.name == "resnet18" and r.optim.nesterov and r.augment[0].d == (32, 96)
    assert r.schedule.milestones == (1, 2)
    assert r.augment[0].r == 0.6  # untouched values stay the recipe's


def test_refuses_to_overwrite_a_run(tmp_path: Path) -> None:
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "ckpt-e0001-s000000.pt").write_bytes(b"")
    with pytest.raises(UsageError, match="--resume auto"):
        main(["--train", str(tmp_path), "--out", str(tmp_path), "--device", "cpu"])
    with pytest.raises(UsageError, match=r"\[optim\] unknown key 'lrr'"):
        main(["--train", str(tmp_path), "--set", "optim.lrr=1", "--device", "cpu"])


def test_cli_dispatches_train() -> None:
    from dali_gridaug.cli import main as cli_main

    with pytest.raises(SystemExit) as exc:
        cli_main(["train", "--help"])
    assert exc.value.code == 0


@pytest.mark.slow
def test_resume_extends_a_finished_run(tiny_data: dict[str, Path], tmp_path: Path) -> None:
    """A finished run continues with more epochs: the step count comes from the checkpoint,
    the schedule from the current flags (cosine over the new length)."""
    argv = [
        "--train",
        str(tiny_data["train"]),
        "--recipe",
        "demo",
        "--batch-size",
        "8",
        "--out",
        str(tmp_path),
        "--device",
        "cpu",
        "--no-progress",
    ]
    assert main([*argv, "--epochs", "1"]) == 0
    first = json.loads((tmp_path / "metrics.json").read_text())
    assert first[0]["lr"] == pytest.approx(0.0, abs=1e-12)  # cosine ended
    assert main([*argv, "--epochs", "2", "--resume", "auto"]) == 0
    rows = json.loads((tmp_path / "metrics.json").read_text())
    assert [r["epoch"] for r in rows] == [0, 1] and rows[0] == first[0]
    state = torch.load(tmp_path / "checkpoints" / "ckpt-e0002-s000000.pt", weights_only=True)
    assert state["scheduler"]["last_epoch"] == 2 * rows[0]["steps"]
    assert rows[1]["top1"] is None  # no --val: no evaluation
