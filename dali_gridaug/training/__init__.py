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
optimizer, scheduler, GradScaler, epoch and step within the epoch, every rank's RNG states and
DALI pipeline checkpoint (reader position and operator random state), and the metrics so far.
A run stopped mid-epoch (``SIGTERM``/``SIGINT``: checkpoint after the current step; a crash:
the last checkpoint, every 10 minutes by default) and resumed with ``--resume auto``
therefore sees the same samples in the same order, with the same augmentation parameters, as
if it had not stopped.

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
