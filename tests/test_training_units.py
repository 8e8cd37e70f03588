"""Pieces of the training package on their own: the schedule continues without touching the
scheduler's private state, stop signals are recorded and handed back, the time-based
checkpoint clock, the device-side epoch meter, and checkpoints that load but are not what
their name says."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import torch

from dali_gridaug.recipes import load_recipe
from dali_gridaug.training.checkpoint import checkpoint_name, find_checkpoint, save_checkpoint
from dali_gridaug.training.metrics import EpochMeter
from dali_gridaug.training.preempt import CheckpointTimer, Preemption
from dali_gridaug.training.schedule import LRFactor, build_scheduler, restore_scheduler


def test_restore_scheduler_uses_the_current_schedule() -> None:
    short = load_recipe("demo").override({"schedule.epochs": 2, "schedule.warmup_epochs": 0})
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=short.optim.lr)
    sched = build_scheduler(opt, short, steps_per_epoch=4)
    for _ in range(8):
        opt.step()
        sched.step()
    saved_opt, saved = opt.state_dict(), sched.state_dict()
    assert opt.param_groups[0]["lr"] == pytest.approx(short.schedule.min_lr)  # cosine ended

    longer = short.override({"schedule.epochs": 4})
    opt2 = torch.optim.SGD(model.parameters(), lr=longer.optim.lr)
    sched2 = build_scheduler(opt2, longer, steps_per_epoch=4)
    opt2.load_state_dict(saved_opt)
    restore_scheduler(sched2, saved)
    expected = longer.optim.lr * LRFactor(longer, 4)(8)
    assert sched2.last_epoch == 8
    assert opt2.param_groups[0]["lr"] == pytest.approx(expected)
    assert sched2.get_last_lr() == [pytest.approx(expected)]  # set by the scheduler itself


def test_preemption_records_the_first_signal_and_restores_handlers() -> None:
    before = signal.getsignal(signal.SIGTERM)
    stop = Preemption()
    with stop.installed():
        assert not stop.requested and stop.exit_status == 0
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)
        assert stop.requested and stop.name == "SIGTERM" and stop.exit_status == 143
        assert signal.getsignal(signal.SIGTERM) is before  # a second one acts at once
    assert signal.getsignal(signal.SIGTERM) is before


def test_checkpoint_timer() -> None:
    assert not CheckpointTimer(0).due()
    timer = CheckpointTimer(0.5 / 60)  # half a second
    assert not timer.due()
    time.sleep(0.6)
    assert timer.due()
    timer.reset()
    assert not timer.due()


def test_epoch_meter_accumulates_on_device() -> None:
    meter = EpochMeter(torch.device("cpu"))
    for loss, n in [(2.0, 8), (1.0, 8), (0.5, 4)]:
        meter.add(torch.tensor(loss, requires_grad=True), n)
    assert meter.loss_sum.dtype == torch.float64 and not meter.loss_sum.requires_grad
    state = meter.state()
    assert state["loss_sum"] == pytest.approx(26.0) and state["count"] == 20
    again = EpochMeter(torch.device("cpu"), state)
    assert again.state() == state


def test_find_checkpoint_skips_a_file_that_is_not_its_name(tmp_path: Path) -> None:
    save_checkpoint({"epoch": 0, "step": 2}, tmp_path, keep_last=0)
    good = save_checkpoint({"epoch": 0, "step": 4}, tmp_path, keep_last=0)
    wrong = tmp_path / checkpoint_name(0, 6)
    wrong.write_bytes(good.read_bytes())  # loads, but holds step 4
    messages: list[str] = []
    path, state = find_checkpoint(tmp_path, messages.append)
    assert path == good and state == {"epoch": 0, "step": 4}
    assert len(messages) == 1 and checkpoint_name(0, 6) in messages[0]
    assert "not its name's" in messages[0] and (tmp_path / f"{wrong.name}.torn").exists()
