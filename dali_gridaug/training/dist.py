"""This process's place in a ``torchrun`` job, and the few collectives the training loop uses.

Without ``torchrun`` (no ``WORLD_SIZE``) the job is one process and every collective here is a
no-op on the local value.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from dali_gridaug.errors import UsageError


@dataclasses.dataclass(frozen=True)
class DistEnv:
    """This process's place in the job.

    Attributes:
        rank: global rank.
        world_size: number of processes.
        local_rank: rank on this node (selects the GPU).
        local_world_size: processes on this node (they share the CPU cores).
        device: the torch device this rank computes on.
        control: a gloo process group for small host-side agreements (stop flags), so that
            agreeing costs no device synchronisation on NCCL jobs; None on one process.
        restart: how many times torchelastic restarted this job's workers
            (:func:`restart_count`); 0 on the first start and without torchrun.
    """

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    device: torch.device
    control: Any = None
    restart: int = 0

    @property
    def main(self) -> bool:
        """True on rank 0, the rank that writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True with more than one process."""
        return self.world_size > 1


def restart_count(environ: Mapping[str, str] | None = None) -> int:
    """``TORCHELASTIC_RESTART_COUNT``: how many times torchelastic (``torchrun
    --max-restarts``) restarted the workers after a failure; 0 when unset (first start,
    or no torchrun). A restarted run continues from its newest checkpoint.
    """
    value = (os.environ if environ is None else environ).get("TORCHELASTIC_RESTART_COUNT", "")
    return int(value) if value.strip().isdigit() else 0


def check_restartable(environ: Mapping[str, str] | None = None) -> None:
    """Refuse ``torchrun --max-restarts N`` (N > 0) on the shared rendezvous store.

    By default (torch 2.14) the c10d rendezvous hands every round the same TCP store, so the
    workers of a restarted round read the process-group addresses of the round that failed
    and hang in ``init_process_group``; with ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1`` set for
    ``torchrun`` each round gets a store of its own and the restart resumes.

    Raises:
        UsageError: restarts are allowed and the agent shares its store.
    """
    env = os.environ if environ is None else environ
    restarts = env.get("TORCHELASTIC_MAX_RESTARTS", "0")
    shared = env.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    if shared and restarts.strip().isdigit() and int(restarts) > 0:
        raise UsageError(
            f"torchrun --max-restarts {restarts} with the shared rendezvous store: a restarted "
            "worker would hang joining the old round's process group; launch torchrun with "
            "TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 in its environment"
        )


def setup_distributed(device: str) -> DistEnv:
    """Read torchrun's environment, pick the device and join the process group (NCCL on GPU,
    gloo on CPU) when there is more than one process.

    Args:
        device: ``"auto"`` (CUDA when usable), ``"gpu"`` or ``"cpu"``.

    Raises:
        UsageError: ``device="gpu"`` without a usable CUDA device, or torchelastic restarts
            that could not rejoin (:func:`check_restartable`).
    """
    env = os.environ
    check_restartable(env)
    world = int(env.get("WORLD_SIZE", "1"))
    rank = int(env.get("RANK", "0"))
    local_rank = int(env.get("LOCAL_RANK", str(rank)))
    local_world = int(env.get("LOCAL_WORLD_SIZE", str(world)))
    use_gpu = device == "gpu" or (device == "auto" and torch.cuda.is_available())
    if use_gpu and not torch.cuda.is_available():
        raise UsageError("`--device` gpu: no CUDA device is usable (pass --device cpu)")
    if use_gpu:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    control = None
    if world > 1:
        if not torch.distributed.is_initialized():
            torch.distributed.init_process_group(
                backend="nccl" if use_gpu else "gloo",
                **({"device_id": dev} if use_gpu else {}),
            )
        control = torch.distributed.new_group(backend="gloo") if use_gpu else None
    return DistEnv(rank, world, local_rank, local_world, dev, control, restart_count(env))


def teardown(env: DistEnv) -> None:
    """Leave the process group (if this job joined one)."""
    if env.distributed and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def all_sum(env: DistEnv, values: Sequence[float]) -> list[float]:
    """Element-wise sum of ``values`` over ranks (float64)."""
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=env.device)
    if env.distributed:
        torch.distributed.all_reduce(t)
    return t.tolist()


def any_rank(env: DistEnv, flags: Sequence[bool]) -> list[bool]:
    """Element-wise OR of ``flags`` over ranks, on the host (gloo: no device sync).

    Every rank must call it at the same point; the loop uses it once per step to agree on
    stopping and on time-based checkpoints.
    """
    if not env.distributed:
        return list(flags)
    t = torch.tensor([int(f) for f in flags], dtype=torch.int32)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX, group=env.control)
    return [bool(v) for v in t.tolist()]


def min_max(env: DistEnv, value: int) -> tuple[int, int]:
    """The smallest and largest ``value`` over ranks."""
    if not env.distributed:
        return value, value
    t = torch.tensor([value, -value], dtype=torch.int64, device=env.device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
    return int(t[0]), int(-t[1])


def gather(env: DistEnv, obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank."""
    if not env.distributed:
        return [obj]
    out: list[Any] = [None] * env.world_size
    torch.distributed.all_gather_object(out, obj)
    return out


def broadcast(env: DistEnv, obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not env.distributed:
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def barrier(env: DistEnv) -> None:
    """Wait for every rank."""
    if env.distributed:
        torch.distributed.barrier()
