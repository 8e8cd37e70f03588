"""Exact checkpoint/resume: a training run killed with SIGKILL mid-epoch and resumed with
``--resume auto`` sees the same samples in the same order (none skipped, none repeated) and
ends with the same weights as a run that was never interrupted; the loader's own
``state_dict`` round trip; atomic, pruned checkpoint files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import dali_gridaug
from dali_gridaug import CutMix, GridMask, create_loader
from dali_gridaug.constants import IMAGENET_MEAN
from dali_gridaug.recipes import load_recipe
from dali_gridaug.tools import make_sample_dataset
from dali_gridaug.training.checkpoint import (
    atomic_write_bytes,
    checkpoint_name,
    find_resume,
    list_checkpoints,
    save_checkpoint,
)
from dali_gridaug.training.checkpoint import pipeline_changes as _pipeline_changes
from dali_gridaug.training.metrics import read_sample_log
from tests.helpers import INVARIANT_CROP

PACKAGE_ROOT = str(Path(dali_gridaug.__file__).resolve().parents[1])

# GridMask then CutMix: the resumed run must also continue both parameter streams exactly.
RECIPE = """
description = "resume test"
[model]
name = "resnet18"
[optim]
lr = 0.02
nesterov = true
[schedule]
name = "cosine"
epochs = 2
warmup_epochs = 0.5
[data]
image_size = 48
batch_size = 16
[[augment]]
name = "gridmask"
r = 0.6
d = [12, 30]
p = 0.7
ramp_epochs = 0
[[augment]]
name = "cutmix"
alpha = 1.0
p = 0.5
"""
STEPS = 15  # 240 files // 16
KILL_AT = 3  # kill once the checkpoint after step 3 of epoch 0 is on disk


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("resume_data")
    return make_sample_dataset(
        root, num_classes=10, train_per_class=24, val_per_class=4, size_range=(64, 120)
    )


def _command(data: dict[str, Path], recipe: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "dali_gridaug.training",
        "--train",
        str(data["train"]),
        "--val",
        str(data["val"]),
        "--recipe",
        str(recipe),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--deterministic",
        "--torch-threads",
        "1",
        "--workers",
        "2",
        "--seed",
        "7",
        "--ckpt-every-steps",
        "3",
        "--keep-last",
        "100",
        "--log-samples",
        "--no-progress",
        *extra,
    ]


def _env() -> dict[str, str]:
    path = os.pathsep.join([PACKAGE_ROOT, os.environ.get("PYTHONPATH", "")])
    return dict(os.environ, PYTHONPATH=path, WORLD_SIZE="1", RANK="0", LOCAL_RANK="0")


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, env=_env(), capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-4000:]


def _steps(out: Path) -> dict[tuple[int, int], list[int]]:
    """(epoch, step) → sample ids; a step logged twice (before the kill and again after the
    resume) must have had the same ids both times."""
    seen: dict[tuple[int, int], list[int]] = {}
    for epoch, step, ids in read_sample_log(out / "samples" / "rank0.tsv"):
        if (epoch, step) in seen:
            assert seen[epoch, step] == ids, f"step {(epoch, step)} saw other samples on resume"
        seen[epoch, step] = ids
    return seen


@pytest.mark.slow
def test_killed_run_resumes_exactly(data: dict[str, Path], tmp_path: Path) -> None:
    recipe = tmp_path / "resume.toml"
    recipe.write_text(RECIPE)
    ref, cut = tmp_path / "reference", tmp_path / "killed"

    _run(_command(data, recipe, ref))

    child = subprocess.Popen(
        _command(data, recipe, cut),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    marker = cut / "checkpoints" / checkpoint_name(0, KILL_AT)
    deadline = time.monotonic() + 240
    while not marker.exists():
        if child.poll() is not None:
            pytest.fail(
                "child ended before its checkpoint: " + child.stderr.read().decode()[-3000:]
            )
        assert time.monotonic() < deadline, "no checkpoint within 240 s"
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    # the kill landed mid-epoch 0: the run was not finished and epoch 0 was not complete
    killed_steps = _steps(cut)
    assert len([k for k in killed_steps if k[0] == 0]) < STEPS
    assert not (cut / "checkpoints" / checkpoint_name(1, 0)).exists()
    latest = list_checkpoints(cut / "checkpoints")[-1]
    assert latest.name.startswith("ckpt-e0000-")

    _run(_command(data, recipe, cut, "--resume", "auto"))

    expected, got = _steps(ref), _steps(cut)
    assert sorted(expected) == [(e, s) for e in range(2) for s in range(STEPS)]
    assert got == expected  # same ids at every step of both epochs, resumed part included
    for epoch in range(2):
        ids = [i for (e, _), b in got.items() if e == epoch for i in b]
        assert len(ids) == len(set(ids)) == STEPS * 16  # none skipped, none repeated
        assert set(ids) <= set(range(240))

    final = checkpoint_name(2, 0)
    a = torch.load(ref / "checkpoints" / final, weights_only=True)
    b = torch.load(cut / "checkpoints" / final, weights_only=True)
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        torch.testing.assert_close(b["model"][key], a["model"][key], rtol=0, atol=1e-6, msg=key)
    momentum = [s["momentum_buffer"] for s in a["optimizer"]["state"].values()]
    momentum_b = [s["momentum_buffer"] for s in b["optimizer"]["state"].values()]
    for x, y in zip(momentum, momentum_b, strict=True):
        torch.testing.assert_close(y, x, rtol=0, atol=1e-6)
    # the epoch metrics cover the whole epoch on both sides (meters travel with checkpoints)
    for row_a, row_b in zip(a["metrics"], b["metrics"], strict=True):
        assert row_b["train_loss"] == pytest.approx(row_a["train_loss"], abs=1e-6)
        assert row_b["top1"] == row_a["top1"]


def _first_batches(loader, n: int) -> list:
    out = []
    for batch in loader:
        out.append(batch)
        if len(out) == n:
            break
    return out


def _loader(root: Path, resume: dict | None = None):
    """Exact resume needs the host-drawn crop (DALI's own crop draw restarts on a rebuild)."""
    return create_loader(
        root,
        batch_size=8,
        image_size=40,
        device="cpu",
        seed=3,
        num_threads=2,
        augment=(GridMask(d=(8, 20), ramp_epochs=2), CutMix(mode="elem")),
        resume=resume,
        preset=INVARIANT_CROP,
    )


def _take(loader, epochs: int, stop: int | None = None) -> tuple[list, dict]:
    """Batches as comparable tuples over ``epochs`` (from the loader's epoch), stopping after
    ``stop`` batches; returns them and the loader's state at that point."""
    out: list = []
    for epoch in range(loader.epoch, epochs):
        loader.set_epoch(epoch)
        for b in loader:
            out.append((b.epoch, b.index.tolist(), b.images.clone(), b.lam.tolist(), b.partner))
            if stop is not None and len(out) == stop:
                return out, loader.state_dict()
    return out, loader.state_dict()


def _same(a: list, b: list) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x[0] == y[0] and x[1] == y[1] and x[3] == y[3]
        assert torch.equal(x[2], y[2]) and torch.equal(x[4], y[4])


@pytest.mark.parametrize("stop", [1, 4, 7, 8, 11])
@pytest.mark.slow
def test_loader_state_round_trip(data: dict[str, Path], stop: int) -> None:
    """Mid-epoch (1, 4), last batch of the epoch (7), after the epoch's end (8) and in the
    second epoch (11): the restored loader yields exactly what the original would have —
    same files, same pixels (the host-drawn crop), same augmentation parameters."""
    root = data["val"]  # 40 files: 5 batches of 8 per epoch
    reference, _ = _take(_loader(root), 3)
    assert len(reference) == 15
    head, state = _take(_loader(root), 3, stop=stop)
    tail, _ = _take(_loader(root, resume=state), 3)
    _same(head + tail, reference)
    # the same through load_state_dict on a loader built without a state
    again = _loader(root)
    again.load_state_dict(state)
    _same(head + _take(again, 3)[0], reference)


def test_loader_state_is_free_of_the_batch_size(data: dict[str, Path]) -> None:
    """A state taken with batches of 8 continues with batches of 4: the rest of the epoch's
    order, each file once; an eval loader has a state too."""
    loader = _loader(data["val"])
    head = [i for b in _first_batches(loader, 2) for i in b.index.tolist()]
    state = loader.state_dict()
    assert state["position"] == 16
    rest = create_loader(
        data["val"],
        batch_size=4,
        image_size=40,
        device="cpu",
        seed=3,
        resume=state,
        augment=(GridMask(d=(8, 20), ramp_epochs=2), CutMix(mode="elem")),
    )
    tail = [i for b in rest for i in b.index.tolist()]
    assert len(tail) == 24 and sorted(head + tail) == list(range(40))
    val = create_loader(data["val"], batch_size=8, train=False, image_size=40, device="cpu")
    assert val.state_dict()["position"] == 0


def test_checkpoint_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "checkpoints"
    for epoch, step in [(0, 3), (0, 6), (1, 0), (9, 0), (10, 0), (10, 3)]:
        save_checkpoint({"epoch": epoch, "step": step}, folder, keep_last=3)
    names = [p.name for p in list_checkpoints(folder)]
    assert names == [checkpoint_name(9, 0), checkpoint_name(10, 0), checkpoint_name(10, 3)]
    assert find_resume("auto", tmp_path) == folder / checkpoint_name(10, 3)
    assert find_resume("auto", tmp_path / "elsewhere") is None
    assert find_resume(None, tmp_path) is None

    # a writer that dies before the rename leaves the previous file whole
    target = folder / checkpoint_name(10, 3)
    before = target.read_bytes()

    def crash(fd: int) -> None:
        raise OSError("killed")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="killed"):
        atomic_write_bytes(target, b"half")
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert torch.load(target, weights_only=True) == {"epoch": 10, "step": 3}
    # the leftover temporary file is invisible to resume and removed by the next save
    assert any(p.name.startswith(".ckpt-") for p in folder.iterdir())
    assert find_resume("auto", tmp_path) == target
    save_checkpoint({"epoch": 11, "step": 0}, folder, keep_last=3)
    assert not any(p.name.startswith(".ckpt-") for p in folder.iterdir())


def test_resume_refuses_a_different_pipeline() -> None:
    demo = load_recipe("demo")
    longer = demo.override({"schedule.epochs": 8, "optim.lr": 0.05, "data.val_batch_size": 4})
    assert _pipeline_changes(demo.to_dict(), longer.to_dict()) == []
    other = demo.override({"data.image_size": 48, "augment[0].p": 0.9})
    assert _pipeline_changes(demo.to_dict(), other.to_dict()) == ["data.image_size", "augment"]
    # compared by effect: a key written out as its default (older files wrote every key) is
    # no change, a changed default is
    spelled = demo.to_dict()
    spelled["data"] |= {"mean": list(IMAGENET_MEAN), "invariant_crop": True, "hflip": 0.5}
    assert _pipeline_changes(spelled, demo.to_dict()) == []
    spelled["data"]["vflip"] = 0.5
    assert _pipeline_changes(spelled, demo.to_dict()) == ["data.vflip"]
