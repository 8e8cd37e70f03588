"""Evaluation that never costs training progress.

Before epoch 0 the validation ImageFolder is checked once with check-data's scan,
:func:`dali_gridaug.datacheck.check_dataset` (rank 0; the result is cached in
``OUT/val_check.json`` and reused while the folder holds the same files), and the files it
cannot decode are left out of the validation loader (``exclude=``). If a file still fails
during an evaluation (a list or tar source, ``--no-check-val``, a file damaged later), the
:class:`~dali_gridaug.errors.DecodeError` is reported with the file named, the loader is
rebuilt without it and the evaluation starts again; a failure that names no file triggers
the check. Training continues in every case, and the epoch's checkpoint is already on disk
(it is written before evaluation).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dali_gridaug.errors import DecodeError
from dali_gridaug.training.checkpoint import atomic_write_bytes
from dali_gridaug.training.dist import DistEnv, barrier, broadcast, gather

VAL_CHECK = "val_check.json"
MAX_REBUILDS = 8


def checked_bad_files(root: str, out: Path, env: DistEnv, log: Callable[[str], None]) -> list[str]:
    """Absolute paths of the files in the validation folder ``root`` that the pipeline cannot
    decode: from ``OUT/val_check.json`` when it describes the same folder and file count,
    else from :func:`~dali_gridaug.datacheck.check_dataset` on rank 0 (then cached). A
    collective; a ``root`` that is not a folder (file list, tar) gives ``[]``.
    """
    if not os.path.isdir(root):
        return []
    bad = None
    if env.main:
        bad = _check_or_cache(os.path.abspath(root), out / VAL_CHECK, log)
    barrier(env)
    return broadcast(env, bad)


def _check_or_cache(root: str, cache: Path, log: Callable[[str], None]) -> list[str]:
    from dali_gridaug.datacheck import check_dataset
    from dali_gridaug.reader import resolve_source

    count = len(getattr(resolve_source(root), "files", ()))
    if cache.is_file():
        saved = json.loads(cache.read_text())
        if saved.get("root") == root and saved.get("files") == count:
            return list(saved["bad"])
    log(f"checking the {count} validation files once (cached in {cache})")
    report = check_dataset(root, progress=False)
    bad = report.bad_paths()
    cache.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"root": root, "files": count, "bad": bad, "report": report.to_json()})
    atomic_write_bytes(cache, text.encode())
    if bad:
        why = {i.path: i.reason for i in report.bad}
        listed = ", ".join(f"{p} ({why.get(os.path.relpath(p, root), '?')})" for p in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        log(
            f"validation: leaving out {len(bad)} file(s) the pipeline cannot decode: {listed}{more}"
        )
    return bad


class ValSet:
    """The validation loader of this rank, minus the files that cannot be decoded.

    Args:
        root: validation source (ImageFolder root, file list or tar shards).
        make_loader: builds this rank's loader leaving out the given absolute paths.
        env: this rank's place in the job.
        out: the run's output folder (for the check cache).
        check: check the folder before the first evaluation.
        log: prints a message (rank 0).
    """

    def __init__(
        self,
        root: str,
        make_loader: Callable[[Sequence[str]], Any],
        env: DistEnv,
        out: Path,
        check: bool,
        log: Callable[[str], None],
    ) -> None:
        self.root, self.make_loader, self.env, self.out, self.log = root, make_loader, env, out, log
        self.exclude = checked_bad_files(root, out, env, log) if check else []
        self.loader = make_loader(self.exclude)

    def evaluate(
        self,
        model: nn.Module,
        run: Callable[[nn.Module, Any, Callable[[], bool]], torch.Tensor | None],
        stop: Callable[[], bool],
    ) -> dict[str, Any] | None:
        """Top-1/top-5 and mean CE over the whole validation set, retried without the files
        that fail to decode; None if a rank was asked to stop (``stop()``) meanwhile.
        ``run(model, loader, stop)`` returns this rank's sums ``(loss, top1, top5, n)``
        (:func:`eval_sums`).
        """
        for _ in range(MAX_REBUILDS):
            sums, failed, stopped = None, None, False
            try:
                sums = run(model, self.loader, stop)
                stopped = sums is None
            except DecodeError as e:
                failed = list(e.paths) or ["?"]
            reports = gather(self.env, (failed, stopped))
            if any(s for _, s in reports):
                return None
            bad = sorted({p for f, _ in reports if f for p in f})
            if not bad:
                return _reduce(sums, self.env)
            self._leave_out(bad)
        raise RuntimeError(f"validation: still failing after {MAX_REBUILDS} rebuilds")

    def _leave_out(self, bad: list[str]) -> None:
        named = [p for p in bad if p != "?"]
        if len(named) < len(bad):  # DALI named no file: find it with the check
            named += [
                p
                for p in checked_bad_files(self.root, self.out, self.env, self.log)
                if p not in self.exclude
            ]
            if not named:
                raise RuntimeError("validation: a file failed to decode and the check finds none")
        self.log(f"validation: cannot decode {', '.join(named)}; evaluating without it")
        self.exclude = sorted(set(self.exclude) | set(named))
        self.loader = self.make_loader(self.exclude)


@torch.no_grad()
def eval_sums(
    model: nn.Module,
    loader: Any,
    device: torch.device,
    autocast: Callable[[], Any],
    channels_last: bool,
    stop: Callable[[], bool],
) -> torch.Tensor | None:
    """This rank's ``(loss sum, top-1 hits, top-5 hits, images)`` (float64) over ``loader``;
    None when ``stop()`` turns true. ``model`` is the bare model (no DDP: ranks may see
    different numbers of batches).
    """
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=device)
    try:
        for batch in loader:
            if stop():
                return None
            images = batch.images
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with autocast():
                logits = model(images)
            logits, labels = logits.float(), batch.labels
            top = logits.topk(min(5, logits.shape[1]), dim=1).indices == labels[:, None]
            sums[0] += F.cross_entropy(logits, labels, reduction="sum").double()
            sums[1] += top[:, 0].sum()
            sums[2] += top.any(1).sum()
            sums[3] += labels.numel()
    finally:
        model.train(was_training)
    return sums


def _reduce(sums: torch.Tensor, env: DistEnv) -> dict[str, Any]:
    if env.distributed:
        torch.distributed.all_reduce(sums)
    loss, c1, c5, n = sums.tolist()
    return {
        "val_loss": loss / max(n, 1),
        "top1": 100.0 * c1 / max(n, 1),
        "top5": 100.0 * c5 / max(n, 1),
        "val_images": int(n),
    }
