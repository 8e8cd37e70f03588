"""What a run records: the epoch meter, ``metrics.csv``/``metrics.json``, ``curves.png`` and
the per-step sample log.

Epochs are numbered from 0 everywhere: the log line ``epoch 0: …``, the ``epoch`` column and
the x axis of ``curves.png`` name the same epoch (the checkpoint written when epoch ``E``
ends is the position "epoch ``E+1``, step 0", see :mod:`dali_gridaug.training.checkpoint`).
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from dali_gridaug.training.checkpoint import atomic_write_bytes

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


class EpochMeter:
    """Training loss and time of the current epoch on this rank.

    The loss sum stays on the training device (float64, no host sync per step); it is read
    only by :meth:`state` (at checkpoints and the epoch's end). Time counts while the meter
    runs (:meth:`start` … :meth:`pause`), so checkpoint writes are not counted.
    """

    def __init__(self, device: torch.device, saved: Mapping[str, Any] | None = None) -> None:
        saved = saved or {}
        self.loss_sum = torch.tensor(
            float(saved.get("loss_sum", 0.0)), dtype=torch.float64, device=device
        )
        self.count = int(saved.get("count", 0))
        self.seconds = float(saved.get("seconds", 0.0))
        self._since: float | None = None

    def start(self) -> None:
        """Start (or continue) counting time."""
        self._since = time.perf_counter()

    def pause(self) -> None:
        """Stop counting time."""
        if self._since is not None:
            self.seconds += time.perf_counter() - self._since
            self._since = None

    def add(self, loss: torch.Tensor, n: int) -> None:
        """Add a batch of ``n`` samples with mean loss ``loss`` (a 0-d tensor)."""
        self.loss_sum += loss.detach().double() * n
        self.count += n

    def state(self) -> dict[str, Any]:
        """``{"loss_sum", "count", "seconds"}`` as plain numbers (one host read)."""
        return {"loss_sum": float(self.loss_sum), "count": self.count, "seconds": self.seconds}


def epoch_line(row: Mapping[str, Any]) -> str:
    """The one-line summary of an epoch's metrics row."""
    line = f"epoch {row['epoch']}: loss {row['train_loss']:.4f}, lr {row['lr']:.4g}"
    if row.get("images_per_s") is not None:
        line += f", {row['images_per_s']:.1f} img/s"
    if row.get("top1") is not None:
        line += f", top-1 {row['top1']:.2f}%, top-5 {row['top5']:.2f}%"
    return line


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
    """Loss (train, val) and accuracy (top-1, top-5) against the epoch (0-based, as logged)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:  # the `plot` extra is optional
        return
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    x = [r["epoch"] for r in rows]

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


class SampleLog:
    """``OUT/samples/rank<r>.tsv``: ``epoch<TAB>step<TAB>id,id,…`` per training step.

    CPU index tensors are written at once, one line per step; device (CUDA) ones are kept on
    the device and written by :meth:`flush` (the loop flushes at each log interval and
    before every checkpoint), so logging costs no host sync per step. Every step up to a
    checkpoint is on disk when the checkpoint is; a killed run leaves whole lines, at worst
    a partial last one.
    """

    def __init__(self, out: Path, rank: int) -> None:
        folder = out / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        self.file = open(folder / f"rank{rank}.tsv", "a", buffering=1)  # noqa: SIM115
        self.pending: list[tuple[int, int, torch.Tensor]] = []

    def write(self, epoch: int, step: int, index: torch.Tensor) -> None:
        """Record the sample ids ``index`` (``(B,)`` int) of ``step`` of ``epoch``."""
        self.pending.append((epoch, step, index))
        if index.device.type == "cpu":
            self.flush()

    def flush(self) -> None:
        """Write the pending steps."""
        for epoch, step, index in self.pending:
            ids = ",".join(str(i) for i in index.tolist())
            self.file.write(f"{epoch}\t{step}\t{ids}\n")
        self.pending.clear()

    def close(self) -> None:
        """Flush and close the file."""
        self.flush()
        self.file.close()


def read_sample_log(path: Path) -> Iterator[tuple[int, int, list[int]]]:
    """Parse a :class:`SampleLog` file, skipping a torn last line."""
    for line in path.read_text().splitlines(keepends=True):
        if not line.endswith("\n"):
            break
        epoch, step, ids = line.rstrip("\n").split("\t")
        yield int(epoch), int(step), [int(i) for i in ids.split(",") if i]
