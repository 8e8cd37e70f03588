r"""``dali-gridaug train``: train a torchvision model from a recipe, on one process or under
``torchrun`` (DDP), surviving preemption.

Modules in the order a run uses them:

- :mod:`~dali_gridaug.training.cli`: command line → ``RunConfig``
  and recipe; every user mistake is a one-line ``UsageError`` before any loader is built.
- :mod:`~dali_gridaug.training.dist`: this process's rank, device and the collectives.
- :mod:`~dali_gridaug.training.parts`: torch settings, resume, loaders, model and optimizer.
- :mod:`~dali_gridaug.training.build`: the recipe's model, loss and Keep stage.
- :mod:`~dali_gridaug.training.schedule`: optimizer and per-step learning-rate schedule.
- :mod:`~dali_gridaug.training.loop`: :class:`~dali_gridaug.training.loop.Trainer`, the epochs.
- :mod:`~dali_gridaug.training.preempt`: stop signals and time-based checkpoints.
- :mod:`~dali_gridaug.training.checkpoint`: atomic checkpoint files, finding the newest valid.
- :mod:`~dali_gridaug.training.evaluate`: validation that survives undecodable files.
- :mod:`~dali_gridaug.training.metrics`: epoch meter, metrics files, plot and sample log.

Everything a run needs to continue is in its checkpoints (``OUT/checkpoints/``): model,
optimizer, scheduler, GradScaler, epoch and step within the epoch, the loader's
world-size-free state (epoch, global position in that epoch's order, seed, the source's
identity), every rank's RNG states and epoch meter, and the metrics so far. A run stopped
mid-epoch (``SIGTERM``/``SIGINT``: checkpoint after the current step; a crash: the last
checkpoint, every 10 minutes by default) and resumed with ``--resume auto`` on the same
number of ranks therefore sees the same samples in the same order, with the same
augmentation parameters, as if it had not stopped (bitwise on CPU with ``--deterministic``).

Resumed on another number of ranks (any that divides the global batch ``data.batch_size``;
each rank then takes global / W images per step), the rest of the epoch's order is split over
the new ranks: every file is still read exactly once per epoch, the schedule, optimizer and
GradScaler continue by global step, and each rank's torch/NumPy/Python/Keep random streams
are reseeded from (seed, global step, rank). Under ``torchrun --max-restarts`` a restarted
worker (``TORCHELASTIC_RESTART_COUNT`` > 0) continues from the newest checkpoint by itself.
``--init-from CKPT`` starts a new run (any recipe, any world size) from a checkpoint's model
weights alone.

Outputs in ``OUT``: ``metrics.csv`` and ``metrics.json`` (one row per epoch, 0-based: loss,
lr, top-1, top-5, images/s, epoch time), ``curves.png``, ``recipe.json`` (the resolved
recipe), ``val_check.json`` (the validation check), and with ``--log-samples``
``samples/rank<r>.tsv`` (``epoch  step  id,id,…`` per step).

Example::

    torchrun --nproc-per-node 8 -m dali_gridaug.training --train /data/train --val /data/val \
        --recipe imagenet_gridmask --amp bf16 --channels-last --out runs/gridmask
"""

from dali_gridaug.training.cli import main
from dali_gridaug.training.config import RunConfig

__all__ = ["RunConfig", "main"]
