"""Preemption: ``SIGTERM``/``SIGINT`` finish the current step, write a checkpoint and exit with
``128 + signal``; ``--resume auto`` continues at that step with no step lost and no sample
repeated; the epoch's checkpoint is on disk before its evaluation; time-based checkpoints are
on by default."""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dali_gridaug.training.checkpoint import checkpoint_name, list_checkpoints
from dali_gridaug.training.cli import main, parse_config
from dali_gridaug.training.metrics import read_sample_log
from tests.helpers import rank_env, train_argv, training_data_fixture

pytestmark = pytest.mark.slow  # subprocess training runs, several epochs, 2 ranks

RECIPE = """
description = "preemption test"
[model]
name = "mobilenet_v3_small"
[schedule]
name = "cosine"
epochs = 2
[data]
image_size = 32
batch_size = 8
[[augment]]
name = "cutmix"
alpha = 1.0
p = 0.5
"""
STEPS = 30  # 240 files // 8


SIZES = dict(num_classes=10, train_per_class=24, val_per_class=20, size_range=(40, 64))
data = training_data_fixture("preempt_data", RECIPE, **SIZES)


_argv = functools.partial(train_argv, val=True, seed=5)


def _spawn(argv: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "dali_gridaug.training", *argv]
    return subprocess.Popen(cmd, env=rank_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_for(child: subprocess.Popen, ready, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + 240
    while not ready():
        if child.poll() is not None:
            pytest.fail(f"run ended before {what}: " + child.stderr.read().decode()[-3000:])
        assert time.monotonic() < deadline, f"no {what} within 240 s"
        time.sleep(0.005)


def _log(out: Path) -> list[tuple[int, int, list[int]]]:
    path = out / "samples" / "rank0.tsv"
    return list(read_sample_log(path)) if path.exists() else []


def test_sigterm_checkpoints_and_resume_continues_at_that_step(
    data: dict[str, Path], tmp_path: Path
) -> None:
    ref, cut = tmp_path / "reference", tmp_path / "stopped"
    assert main(_argv(data, ref)) == 0

    child = _spawn(_argv(data, cut))  # default settings: no step-based checkpoints
    _wait_for(child, lambda: len(_log(cut)) >= 3, "step 3")
    sent = time.monotonic()
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=120)
    took, message = time.monotonic() - sent, err.decode(errors="replace")
    assert child.returncode == 128 + signal.SIGTERM, message[-3000:]
    assert took < 20, f"took {took:.1f} s to stop"
    found = re.search(
        r"SIGTERM: stopped at step (\d+) of epoch 0, checkpoint (\S+) written", message
    )
    assert found, message[-3000:]
    k = int(found.group(1))
    assert 3 <= k < STEPS
    assert [p.name for p in list_checkpoints(cut / "checkpoints")] == [checkpoint_name(0, k)]
    before = _log(cut)
    assert [(e, s) for e, s, _ in before] == [(0, s) for s in range(k)]  # none after the stop

    assert main([*_argv(data, cut), "--resume", "auto"]) == 0
    after = _log(cut)[k:]
    assert (after[0][0], after[0][1]) == (0, k)  # continues at step k
    steps = [(e, s) for e, s, _ in _log(cut)]
    assert steps == [(e, s) for e in range(2) for s in range(STEPS)]  # each step exactly once
    assert _log(cut) == _log(ref)  # the same samples at every step as the uninterrupted run
    for epoch in range(2):
        ids = [i for e, _, b in _log(cut) if e == epoch for i in b]
        assert len(ids) == len(set(ids)) == STEPS * 8  # no sample repeated
    rows = json.loads((cut / "metrics.json").read_text())
    assert [r["epoch"] for r in rows] == [0, 1] and all(r["top1"] is not None for r in rows)


def test_checkpoint_is_written_before_evaluation(data: dict[str, Path], tmp_path: Path) -> None:
    """Stopped during epoch 0's evaluation: the epoch is not trained again; the resumed run
    evaluates it first."""
    out = tmp_path / "run"
    child = _spawn(_argv(data, out, "--epochs", "1"))
    end_of_epoch = out / "checkpoints" / checkpoint_name(1, 0)
    _wait_for(child, end_of_epoch.exists, "the epoch's checkpoint")
    assert not (out / "metrics.json").exists()  # written after evaluation
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=120)
    assert child.returncode in (0, 143, -signal.SIGTERM), err.decode()[-3000:]
    trained = len(_log(out))
    assert trained == STEPS

    assert main([*_argv(data, out, "--epochs", "1"), "--resume", "auto"]) == 0
    assert len(_log(out)) == trained  # no training step repeated
    (row,) = json.loads((out / "metrics.json").read_text())
    assert row["val_images"] == 200 and row["top1"] is not None


def test_sigint_in_process_stops_with_130(data: dict[str, Path], tmp_path: Path) -> None:
    import threading

    out = tmp_path / "run"

    def interrupt() -> None:
        deadline = time.monotonic() + 240
        while len(_log(out)) < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(os.getpid(), signal.SIGINT)

    previous = signal.getsignal(signal.SIGINT)
    threading.Thread(target=interrupt, daemon=True).start()
    assert main(_argv(data, out, "--epochs", "1")) == 128 + signal.SIGINT
    assert signal.getsignal(signal.SIGINT) is previous  # handler restored
    (ckpt,) = list_checkpoints(out / "checkpoints")
    assert ckpt.name == checkpoint_name(0, len(_log(out)))


def test_time_based_checkpoints(data: dict[str, Path], tmp_path: Path) -> None:
    assert parse_config(["--train", "x"]).ckpt_every_minutes == 10.0  # on by default
    every = ["--epochs", "1", "--keep-last", "100", "--ckpt-every-minutes"]
    assert main(_argv(data, tmp_path / "often", *every, "0.00001")) == 0
    names = [p.name for p in list_checkpoints(tmp_path / "often" / "checkpoints")]
    assert names == [checkpoint_name(0, s) for s in range(1, STEPS)] + [checkpoint_name(1, 0)]
    assert main(_argv(data, tmp_path / "off", *every, "0")) == 0
    names = [p.name for p in list_checkpoints(tmp_path / "off" / "checkpoints")]
    assert names == [checkpoint_name(1, 0)]


def test_sigterm_to_one_rank_stops_both_at_the_same_step(
    data: dict[str, Path], tmp_path: Path
) -> None:
    """2 gloo ranks: only rank 1 is signalled; the ranks agree after the step, write one
    checkpoint and both exit 143; the resumed pair continues at that step."""
    import socket

    out = tmp_path / "ddp"

    def spawn(*extra: str) -> list[subprocess.Popen]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cmd = [sys.executable, "-m", "dali_gridaug.training", *_argv(data, out, *extra)]
        return [
            subprocess.Popen(
                cmd, env=rank_env(r, 2, port), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            for r in range(2)
        ]

    procs = spawn("--epochs", "1")
    log1 = out / "samples" / "rank1.tsv"
    _wait_for(procs[0], lambda: log1.exists() and len(list(read_sample_log(log1))) >= 2, "steps")
    procs[1].send_signal(signal.SIGTERM)
    errs = [p.communicate(timeout=120)[1].decode(errors="replace") for p in procs]
    assert [p.returncode for p in procs] == [143, 143], errs[0][-2000:] + errs[1][-2000:]
    (ckpt,) = list_checkpoints(out / "checkpoints")
    logs = [list(read_sample_log(out / "samples" / f"rank{r}.tsv")) for r in range(2)]
    k = len(logs[0])
    assert len(logs[1]) == k and ckpt.name == checkpoint_name(0, k) and 2 <= k < STEPS

    procs = spawn("--epochs", "1", "--resume", "auto")
    errs = [p.communicate(timeout=300)[1].decode(errors="replace") for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs[0][-2000:] + errs[1][-2000:]
    for r in range(2):
        steps = [(e, s) for e, s, _ in read_sample_log(out / "samples" / f"rank{r}.tsv")]
        assert steps == [(0, s) for s in range(STEPS)]  # each step once, per rank (4 images)
    ids = [
        i
        for r in range(2)
        for _, _, b in read_sample_log(out / "samples" / f"rank{r}.tsv")
        for i in b
    ]
    assert len(ids) == len(set(ids)) == STEPS * 8
