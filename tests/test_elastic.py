"""Elastic runs: a checkpoint resumes at another world size (mid-epoch and at an epoch
boundary) as long as the global batch stays the same, every file read exactly once per
epoch; ``--init-from`` starts a new run from a checkpoint's weights alone; a checkpoint of
another dataset, global batch or seed is a one-line error that writes nothing; and
``torchrun --nnodes=1:2 --max-restarts=3 --rdzv-backend=c10d`` restarts a run whose worker was
SIGKILLed, which continues from its newest checkpoint by itself."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from dali_gridaug.errors import UsageError
from dali_gridaug.training.checkpoint import checkpoint_name, list_checkpoints, load_checkpoint
from dali_gridaug.training.cli import main, parse_config, resolve_recipe
from dali_gridaug.training.dist import check_restartable, setup_distributed, teardown
from dali_gridaug.training.loop import Trainer
from dali_gridaug.training.metrics import read_sample_log
from dali_gridaug.training.parts import check_resumable
from tests.helpers import rank_env, train_argv, training_data_fixture

RECIPE = """
description = "elastic test"
[model]
name = "mobilenet_v3_small"
[schedule]
name = "cosine"
epochs = 1
[data]
image_size = 32
batch_size = 24
[[augment]]
name = "gridmask"
d = [8, 16]
p = 0.5
[[augment]]
name = "cutmix"
alpha = 1.0
p = 0.5
"""
GLOBAL = 24  # divided by 1, 2 and 3 ranks
FILES = 360
STEPS = FILES // GLOBAL  # 15

data = training_data_fixture(
    "elastic_data",
    RECIPE,
    num_classes=8,
    train_per_class=45,
    val_per_class=1,
    size_range=(36, 52),
)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(argv: list[str], world: int) -> list[subprocess.Popen]:
    """``world`` training processes of one job (rank 0 … world − 1, gloo on loopback)."""
    cmd = [sys.executable, "-m", "dali_gridaug.training", *argv]
    port = _port()
    return [
        subprocess.Popen(
            cmd, env=rank_env(r, world, port), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        for r in range(world)
    ]


def _finish(procs: list[subprocess.Popen], timeout: float = 300) -> tuple[list[int], str]:
    errs = [p.communicate(timeout=timeout)[1].decode(errors="replace") for p in procs]
    return [p.returncode for p in procs], "\n".join(e[-2500:] for e in errs)


def _log(out: Path, rank: int) -> list[tuple[int, int, list[int]]]:
    path = out / "samples" / f"rank{rank}.tsv"
    return list(read_sample_log(path)) if path.exists() else []


def _wait(procs: list[subprocess.Popen], ready: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 240
    while not ready():
        for p in procs:
            if p.poll() is not None:
                pytest.fail(f"run ended before {what}: " + p.stderr.read().decode()[-3000:])
        assert time.monotonic() < deadline, f"no {what} within 240 s"
        time.sleep(0.005)


def _stop(procs: list[subprocess.Popen], after: int, out: Path) -> int:
    """SIGTERM every rank once rank 0 logged ``after`` steps; returns the step it stopped at."""
    _wait(procs, lambda: len(_log(out, 0)) >= after, f"{after} logged steps")
    for p in procs:
        p.send_signal(signal.SIGTERM)
    codes, err = _finish(procs, 120)
    assert codes == [128 + signal.SIGTERM] * len(procs), err
    found = re.search(r"stopped at step (\d+) of epoch 0, checkpoint (\S+) written", err)
    assert found, err
    return int(found.group(1))


def _per_step(out: Path, ranks: int) -> dict[tuple[int, int], dict[int, list[int]]]:
    """(epoch, step) → rank → ids; a step a rank logged twice had the same ids both times."""
    steps: dict[tuple[int, int], dict[int, list[int]]] = {}
    for r in range(ranks):
        for epoch, step, ids in _log(out, r):
            seen = steps.setdefault((epoch, step), {})
            assert seen.get(r, ids) == ids, f"rank {r} step {(epoch, step)} saw other ids"
            seen[r] = ids
    return steps


def _exactly_once(steps: dict[tuple[int, int], dict[int, list[int]]], epoch: int) -> None:
    ids = [
        i for (e, _), by_rank in steps.items() if e == epoch for b in by_rank.values() for i in b
    ]
    assert sorted(ids) == list(range(FILES)), f"epoch {epoch}: not every file exactly once"


@pytest.mark.slow
def test_two_ranks_resume_on_one_then_three_then_two(data: dict[str, Path], tmp_path: Path):
    """SIGTERM mid-epoch at W=2, resume at W=1 and stop mid-epoch again, finish the epoch at
    W=3, then extend the run by an epoch at W=2 (resumed at an epoch boundary). Every
    global step consumes the same files as an uninterrupted W=1 run."""
    ref, out = tmp_path / "reference", tmp_path / "elastic"
    assert main(train_argv(data, ref, "--epochs", "2")) == 0
    reference = _per_step(ref, 1)

    k1 = _stop(_spawn(train_argv(data, out), 2), 2, out)
    assert 2 <= k1 < STEPS - 4
    assert [p.name for p in list_checkpoints(out / "checkpoints")] == [checkpoint_name(0, k1)]

    k2 = _stop(_spawn(train_argv(data, out, "--resume", "auto"), 1), k1 + 2, out)
    assert k1 + 2 <= k2 < STEPS, "the 1-rank run must stop mid-epoch"

    procs = _spawn(train_argv(data, out, "--resume", "auto"), 3)
    codes, err = _finish(procs)
    assert codes == [0, 0, 0], err
    assert f"written by 1 rank(s), resumed on 3: batch {GLOBAL // 3} per rank" in err
    final = load_checkpoint(out / "checkpoints" / checkpoint_name(1, 0))
    assert final["world_size"] == 3 and final["scheduler"]["last_epoch"] == STEPS
    assert final["metrics"][0]["steps"] == STEPS

    procs = _spawn(train_argv(data, out, "--resume", "auto", "--epochs", "2"), 2)
    codes, err = _finish(procs)
    assert codes == [0, 0], err

    steps = _per_step(out, 3)
    assert sorted(steps) == [(e, s) for e in range(2) for s in range(STEPS)]
    width = {s: 2 if s < k1 else 1 if s < k2 else 3 for s in range(STEPS)}
    for (epoch, step), by_rank in steps.items():
        ranks = width[step] if epoch == 0 else 2
        assert sorted(by_rank) == list(range(ranks)), (epoch, step)
        assert all(len(b) == GLOBAL // ranks for b in by_rank.values())
        assert sorted(i for b in by_rank.values() for i in b) == sorted(
            reference[epoch, step][0]
        ), f"step {(epoch, step)} consumed other files than at W=1"
    for epoch in range(2):
        _exactly_once(steps, epoch)
    rows = load_checkpoint(out / "checkpoints" / checkpoint_name(2, 0))["metrics"]
    assert [r["epoch"] for r in rows] == [0, 1]


def _on(train: Path, argv: list[str]) -> list[str]:
    """``argv`` (of :func:`train_argv`, recipe included) with ``--train`` set to ``train``."""
    out = list(argv)
    out[out.index("--train") + 1] = str(train)
    return out


def _snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Relative path → (SHA-256, mtime in ns) of every file under ``folder``."""
    files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
    return {
        str(p.relative_to(folder)): (
            hashlib.sha256(p.read_bytes()).hexdigest(),
            p.stat().st_mtime_ns,
        )
        for p in files
    }


@pytest.fixture(scope="module")
def finished(data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished one-epoch run at W=1 (seed 7)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(train_argv(data, out, "--seed", "7", "--ckpt-every-steps", "5")) == 0
    return out


def test_checkpoint_of_another_run_is_refused_and_writes_nothing(
    data: dict[str, Path], finished: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    shutil.copytree(data["train"], other)
    smaller = other.parent / "smaller"
    shutil.copytree(other, smaller)
    first = sorted(other.iterdir())[0].name  # a class folder
    sorted((smaller / first).iterdir())[0].unlink()
    renamed = sorted((other / first).iterdir())[0]
    renamed.rename(renamed.with_name("renamed.jpg"))
    before = _snapshot(finished)
    resume = ["--resume", "auto", "--epochs", "2", "--seed", "7"]
    cases = [
        (
            {"train": smaller},
            [],
            r"`--train`: \S+ was trained on 360 files, this run's --train "
            r"has 359",
        ),
        (
            {"train": other},
            [],
            r"`--train`: \S+ was trained on a file list with SHA-256 [0-9a-f]+,"
            r" this run's --train has [0-9a-f]+",
        ),
        (
            {},
            ["--batch-size", "12"],
            r"`--batch-size` \(data.batch_size, the global batch\): \S+ "
            r"was trained with 24, this run has 12",
        ),
        ({}, ["--seed", "8"], r"`--seed`: \S+ was trained with --seed 7, this run has --seed 8"),
    ]
    for paths, extra, message in cases:
        with pytest.raises(UsageError, match=message) as err:
            argv = train_argv(data, finished, *resume, *extra)
            main(_on(paths["train"], argv) if paths else argv)
        assert "\n" not in str(err.value)
        assert _snapshot(finished) == before, f"{extra or paths}: the output folder changed"

    # a world size that does not divide the global batch (checked before any loader)
    path = finished / "checkpoints" / checkpoint_name(0, 5)
    cfg = parse_config(train_argv(data, finished, *resume))
    with pytest.raises(UsageError, match=r"global batch 24 does not split over 5 ranks"):
        check_resumable(path, load_checkpoint(path), cfg, resolve_recipe(cfg), 5)


def test_init_from_starts_a_new_run_from_the_weights(
    data: dict[str, Path], finished: Path, tmp_path: Path
) -> None:
    ckpt = finished / "checkpoints" / checkpoint_name(1, 0)
    with pytest.raises(UsageError, match=r"`--init-from` .* cannot be combined with `--resume`"):
        main(train_argv(data, tmp_path / "x", "--init-from", str(ckpt), "--resume", "auto"))
    with pytest.raises(UsageError, match=r"`--init-from`: checkpoint '\S+nope.pt' does not"):
        main(train_argv(data, tmp_path / "x", "--init-from", str(tmp_path / "nope.pt")))

    # another recipe (batch, schedule, augmentations) and another class count: the
    # classifier's last layer stays fresh, every other tensor comes from the checkpoint
    recipe = tmp_path / "finetune.toml"
    recipe.write_text(RECIPE.replace("batch_size = 24", "batch_size = 16").split("[[augment]]")[0])
    few = tmp_path / "few"
    for folder in sorted(data["train"].iterdir())[:3]:
        shutil.copytree(folder, few / folder.name)
    argv = train_argv(data, tmp_path / "tune", "--init-from", str(ckpt), "--seed", "3")
    argv = _on(few, argv)
    argv[argv.index("--recipe") + 1] = str(recipe)
    cfg = parse_config([*argv, "--lr", "0.01"])
    env = setup_distributed("cpu")
    try:
        trainer = Trainer(cfg, resolve_recipe(cfg), env)
        saved = load_checkpoint(ckpt)["model"]
        fresh = {
            k for k, v in trainer.parts.model.state_dict().items() if not torch.equal(v, saved[k])
        }
        assert fresh == {"classifier.3.weight", "classifier.3.bias"}
        assert (trainer.epoch, trainer.step) == (0, 0) and trainer.history == []
        assert trainer.parts.optimizer.state_dict()["state"] == {}
        assert trainer.parts.scheduler.last_epoch == 0
        assert trainer.train_loader.state_dict()["position"] == 0
        assert trainer.train_loader.batch_size == 16
        trainer.samples.close()  # the run is not fitted: close its sample log here
    finally:
        teardown(env)


@pytest.mark.slow
def test_init_from_on_two_ranks(data: dict[str, Path], finished: Path, tmp_path: Path) -> None:
    ckpt = finished / "checkpoints" / checkpoint_name(1, 0)
    out = tmp_path / "tune"
    argv = train_argv(data, out, "--init-from", str(ckpt), "--lr", "0.01", "--batch-size", "36")
    codes, err = _finish(_spawn(argv, 2))
    assert codes == [0, 0], err
    assert f"initialised the model from {ckpt}" in err
    state = load_checkpoint(out / "checkpoints" / checkpoint_name(1, 0))
    assert state["global_batch"] == 36 and state["scheduler"]["last_epoch"] == FILES // 36
    _exactly_once(_per_step(out, 2), 0)


def _workers(agent: int) -> dict[int, int]:
    """RANK → pid of the worker processes torchrun's agent ``agent`` started."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid != agent:
                continue
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        for item in environ:
            if item.startswith(b"RANK="):
                found[int(item[5:])] = int(entry)
    return found


#: The torchrun options the elastic test (and the README) use; loopback only.
TORCHRUN = [
    "--nnodes=1:2",
    "--nproc-per-node=2",
    "--max-restarts=3",
    "--rdzv-backend=c10d",
    "--rdzv-conf=last_call_timeout=1",
    "--monitor-interval=0.5",
]


@pytest.mark.slow
def test_torchrun_restarts_a_killed_worker_and_resumes(
    data: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    argv = train_argv(data, out, "--ckpt-every-steps", "2", "--keep-last", "100")
    endpoint = f"--rdzv-endpoint=localhost:{_port()}"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        *TORCHRUN,
        endpoint,
        "-m",
        "dali_gridaug.training",
        *argv,
    ]
    env = rank_env()
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(name)
    env["TORCH_DISABLE_SHARE_RDZV_TCP_STORE"] = "1"  # a store per rendezvous round
    agent = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    marker = out / "checkpoints" / checkpoint_name(0, 4)
    _wait([agent], marker.exists, "the checkpoint after step 4")
    workers = _workers(agent.pid)
    assert sorted(workers) == [0, 1], workers
    os.kill(workers[1], signal.SIGKILL)
    _, err = agent.communicate(timeout=300)
    message = err.decode(errors="replace")
    assert agent.returncode == 0, message[-5000:]
    found = re.search(r"torchelastic restart 1: continuing from (ckpt-e0000-s\d+\.pt)", message)
    assert found, message[-5000:]
    steps = _per_step(out, 2)
    assert sorted(steps) == [(0, s) for s in range(STEPS)]
    _exactly_once(steps, 0)
    assert (out / "checkpoints" / checkpoint_name(1, 0)).exists()


def test_restarts_on_the_shared_rendezvous_store_are_refused() -> None:
    """A restarted round on the shared store would hang in init_process_group: refused at
    start with the fix named; restarts off, or a store per round, start as before."""
    shared = {"TORCHELASTIC_USE_AGENT_STORE": "True", "TORCHELASTIC_MAX_RESTARTS": "3"}
    with pytest.raises(UsageError, match="TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1"):
        check_restartable(shared)
    check_restartable({**shared, "TORCHELASTIC_MAX_RESTARTS": "0"})
    check_restartable({**shared, "TORCHELASTIC_USE_AGENT_STORE": "False"})
    check_restartable({})
