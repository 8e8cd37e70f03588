"""Checkpoint files: names, atomic writes, free-space checks, and finding the newest valid one.

A checkpoint ``OUT/checkpoints/ckpt-e{E:04d}-s{S:06d}.pt`` is the run's position "``S``
steps of epoch ``E`` done" (epochs 0-based; ``s000000``: epoch ``E`` has not started, so the
checkpoint written when epoch 0 ends is ``ckpt-e0001-s000000.pt``). Names sort in training
order. Files are written atomically (a temporary ``.NAME.tmp<pid>`` in the same folder,
fsync, ``os.replace``, fsync of the folder): a reader sees the old file or the whole new one.

Format 2 (the one written now) holds what every rank shares once: ``epoch``, ``step``,
``steps_per_epoch``, ``global_batch`` (images per global step), ``seed``, ``world_size``
(the writer's, for information and for :func:`same_world`), ``recipe``, ``model``,
``optimizer``, ``scheduler``, ``scaler``, ``metrics`` and ``loader`` (the loader's
world-size-free :meth:`~dali_gridaug.loader.DaliLoader.state_dict`); and ``ranks``, one
``{"rng", "meter"}`` per writing rank, used as saved only at the same world size (see
:func:`seed_rank_streams` for the other case). It resumes at any world size that divides
``global_batch``.

Resuming never trusts a file blindly: :func:`find_checkpoint` loads the newest, reports and
moves aside a torn one (``NAME.torn``, so pruning never mistakes it for the newest) and falls
back to older ones; :func:`clean_stale_temp` removes the temporary files a killed or
disk-full writer left, before anything else is written.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import random
import re
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dali_gridaug.errors import UsageError
from dali_gridaug.training.dist import DistEnv

CHECKPOINT_DIR = "checkpoints"
#: The checkpoint layout written now (see the module docstring); resume needs it.
FORMAT = 2
_CKPT_RE = re.compile(r"^ckpt-e(\d{4,})-s(\d{6,})\.pt$")
_TEMP_RE = re.compile(r"^\..+\.tmp\d+$")


class CheckpointSpaceError(OSError):
    """Not enough free disk space to write a checkpoint (the folder, the bytes needed and
    the bytes free are in the message).
    """


def checkpoint_name(epoch: int, step: int) -> str:
    """``ckpt-e0003-s000120.pt``: ``step`` batches of ``epoch`` done (``s000000``: the epoch
    has not started). Names sort in training order.
    """
    return f"ckpt-e{epoch:04d}-s{step:06d}.pt"


def list_checkpoints(folder: Path) -> list[Path]:
    """Checkpoint files in ``folder``, oldest first (temporary and torn files are ignored)."""
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = _CKPT_RE.match(p.name)
        if m:
            found.append(((int(m.group(1)), int(m.group(2))), p))
    return [p for _, p in sorted(found)]


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one:
    a temporary file in the same folder, fsync, ``os.replace``, fsync of the folder.
    A writer killed midway leaves the temporary file (see :func:`clean_stale_temp`).
    """
    tmp = _temp_path(path)
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


def clean_stale_temp(folder: Path) -> list[tuple[str, int]]:
    """Delete the temporary files (``.NAME.tmp<pid>``) a killed or disk-full writer left in
    ``folder``; returns ``(name, bytes)`` of each. Call it only while no writer runs.
    """
    removed = []
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        if _TEMP_RE.match(p.name) and p.is_file():
            with contextlib.suppress(FileNotFoundError):
                size = p.stat().st_size
                p.unlink()
                removed.append((p.name, size))
    return removed


def check_free_space(folder: Path, size: int, reserve: int = 0) -> None:
    """Raise :class:`CheckpointSpaceError` unless ``folder``'s filesystem has ``size`` +
    ``reserve`` bytes free.
    """
    free = shutil.disk_usage(folder).free
    if free < size + reserve:
        raise CheckpointSpaceError(
            errno.ENOSPC,
            f"not enough free space in {folder} for checkpoint: need {size + reserve} bytes "
            f"({size} checkpoint + {reserve} reserve), {free} free",
        )


def save_checkpoint(
    state: Mapping[str, Any], folder: Path, keep_last: int, reserve: int = 0
) -> Path:
    """Write ``state`` atomically as ``checkpoint_name(epoch, step)`` and delete all but the
    ``keep_last`` newest checkpoints (and temporary files a killed writer left behind).

    Args:
        state: the checkpoint (``epoch`` and ``step`` name the file).
        folder: the checkpoint folder (created if missing).
        keep_last: checkpoints kept, newest first (``0``: all).
        reserve: bytes that must stay free besides the checkpoint itself.

    Raises:
        CheckpointSpaceError: too little free space (checked before writing, and a disk-full
            write is reported the same way, its temporary file removed).
    """
    folder.mkdir(parents=True, exist_ok=True)
    clean_stale_temp(folder)
    path = folder / checkpoint_name(state["epoch"], state["step"])
    buffer = io.BytesIO()
    torch.save(dict(state), buffer)
    data = buffer.getvalue()
    check_free_space(folder, len(data), reserve)
    try:
        atomic_write_bytes(path, data)
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
        with contextlib.suppress(FileNotFoundError):
            _temp_path(path).unlink()
        free = shutil.disk_usage(folder).free
        raise CheckpointSpaceError(
            errno.ENOSPC,
            f"disk full writing a checkpoint in {folder}: need {len(data) + reserve} bytes, "
            f"{free} free",
        ) from e
    for old in list_checkpoints(folder)[:-keep_last] if keep_last > 0 else []:
        with contextlib.suppress(FileNotFoundError):
            old.unlink()
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint (CPU tensors, ``weights_only``); raises on a torn or foreign file."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    m = _CKPT_RE.match(path.name)
    if not isinstance(state, Mapping) or "epoch" not in state or "step" not in state:
        raise ValueError("not a dali-gridaug checkpoint (no epoch/step)")
    if m and (int(m.group(1)), int(m.group(2))) != (state["epoch"], state["step"]):
        raise ValueError(f"holds epoch {state['epoch']} step {state['step']}, not its name's")
    return dict(state)


def find_checkpoint(
    folder: Path, report: Callable[[str], None] = print
) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint in ``folder`` that loads, and its state; None if there is none.

    Newer files that do not load (torn by a crash, truncated by a full disk, foreign) are
    reported through ``report`` and renamed ``NAME.torn``, so that they are not taken for the
    newest again and pruning keeps the valid ones. Run it on one rank only.
    """
    for path in reversed(list_checkpoints(folder)):
        try:
            return path, load_checkpoint(path)
        except Exception as e:  # any unreadable file: fall back to an older one
            aside = path.with_name(path.name + ".torn")
            with contextlib.suppress(OSError):
                os.replace(path, aside)
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            report(f"skipping torn checkpoint {path.name} ({reason}); moved to {aside.name}")
    return None


def find_resume(resume: str | None, out: Path) -> Path | None:
    """The checkpoint ``--resume`` names: ``auto`` → the newest valid one in
    ``OUT/checkpoints`` (None if there is none), a path → that file.

    Raises:
        UsageError: the path is not a file.
    """
    if resume is None:
        return None
    if resume == "auto":
        found = find_checkpoint(out / CHECKPOINT_DIR)
        return found[0] if found else None
    path = Path(resume)
    if not path.is_file():
        raise UsageError(f"`--resume`: checkpoint {resume!r} does not exist")
    return path


def pipeline_changes(saved: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """Recipe values that define the training pipeline and differ between two recipes (their
    :meth:`~dali_gridaug.recipes.Recipe.to_dict`): ``[data]`` compared by effect, each key's
    value after the defaults (a key written out as its default is no change), then
    ``[[augment]]`` and ``[keep]``.
    """
    old, new = data_values(saved.get("data", {})), data_values(now.get("data", {}))
    changed = [f"data.{k}" for k in old if old[k] != new[k]]
    for key in ("augment", "keep"):
        if saved.get(key) != now.get(key):
            changed.append(key)
    return changed


def data_values(table: Mapping[str, Any]) -> dict[str, Any]:
    """A ``[data]`` table's effective values by key (the loader's size, mean and std from
    its final preset), ``val_batch_size`` left out (it does not shape training).
    """
    from dali_gridaug.recipes.sections import DATA_OPTIONS, DataSection, data_table

    section = DataSection(**data_table(dict(table)))
    config = section.loader()
    preset = config.final_preset()
    final = {"image_size": preset.size, "mean": preset.mean, "std": preset.std}
    values = {k: final.get(k, getattr(config, k)) for k in DATA_OPTIONS}
    return {"batch_size": section.batch_size, "workers": section.workers, **values}


def rng_state(env: DistEnv) -> dict[str, Any]:
    """This rank's random states (torch CPU/CUDA, NumPy, Python), as plain bytes and numbers
    (they travel through ``all_gather_object``). The Keep stage has none: its draws are keyed
    by the run seed, the epoch and each sample's position.
    """

    def raw(t: torch.Tensor | None) -> bytes | None:
        return None if t is None else t.cpu().numpy().tobytes()

    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": raw(torch.get_rng_state()),
        "cuda": raw(torch.cuda.get_rng_state(env.device)) if env.device.type == "cuda" else None,
        "numpy": [kind, keys.tobytes(), int(pos), int(has_gauss), float(gauss)],
        "python": random.getstate(),
    }


def set_rng_state(state: Mapping[str, Any], env: DistEnv) -> None:
    """Restore what :func:`rng_state` saved (a ``"keep"`` generator state of an older
    checkpoint is ignored: the Keep stage's draws are keyed, not stateful).
    """

    def tensor(b: bytes) -> torch.Tensor:
        return torch.frombuffer(bytearray(b), dtype=torch.uint8)

    torch.set_rng_state(tensor(state["torch"]))
    if state["cuda"] is not None and env.device.type == "cuda":
        torch.cuda.set_rng_state(tensor(state["cuda"]), env.device)
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.frombuffer(keys, np.uint32).copy(), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


def same_world(state: Mapping[str, Any], world_size: int) -> bool:
    """True when ``state`` was written by ``world_size`` ranks: each rank then restores its
    own saved RNG states and meter (a bitwise continuation on CPU with ``--deterministic``).
    """
    return int(state["world_size"]) == world_size and len(state["ranks"]) == world_size


def seed_rank_streams(seed: int, global_step: int, rank: int) -> None:
    """Seed this rank's torch (CPU and CUDA), NumPy and Python streams from
    ``(seed, global_step, rank)``: the RNG policy of a resume at another world
    size, where the saved per-rank states have no owner. ``global_step`` counts optimizer
    steps since the run began (``epoch · steps_per_epoch + step``), so the streams continue
    by global step and do not depend on the world size that wrote the checkpoint. The
    loader's and the Keep stage's draws need none of this: they are keyed by the seed and the
    global step (Keep: the seed, the epoch and each sample's position).
    """
    entropy = np.random.SeedSequence([seed, global_step, rank]).generate_state(1)[0]
    value = int(entropy)
    torch.manual_seed(value)
    np.random.seed(value)
    random.seed(value)


def merged_meter(ranks: list[Mapping[str, Any]], rank: int) -> dict[str, Any]:
    """This rank's share of the epoch meters of a checkpoint written at another world size:
    rank 0 takes the whole loss sum and image count, every rank the writers' mean
    ``seconds`` (the epoch's row sums them over ranks and divides time by the world size,
    so its loss, count and time cover the whole epoch).
    """
    meters = [r["meter"] for r in ranks]
    seconds = sum(float(m["seconds"]) for m in meters) / max(1, len(meters))
    if rank != 0:
        return {"loss_sum": 0.0, "count": 0, "seconds": seconds}
    return {
        "loss_sum": sum(float(m["loss_sum"]) for m in meters),
        "count": sum(int(m["count"]) for m in meters),
        "seconds": seconds,
    }
