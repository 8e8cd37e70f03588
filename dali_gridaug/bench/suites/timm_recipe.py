"""timm's own loader against ours, one recipe: suite ``timm-deit``.

Both sides are built from one timm ``train.py`` argument set, the DeiT recipe (RandAugment
``rand-m9-mstd0.5-inc1``, ``--train-interpolation random``, RandomErasing p 0.25 per-pixel
noise, Mixup 0.8 + CutMix 1.0 with smoothing 0.1):

* ``timm``: ``timm.data.create_loader`` with the keywords ``train.py`` passes (``workers``
  processes, ``PrefetchLoader`` normalizing and erasing on the device, ``FastCollateMixup``
  as the collate function);
* ``dali``: :func:`dali_gridaug.timm_loader.timm_loader` on the same ``args``;
* ``timm-plain`` / ``dali-plain``: the same with every augmentation off (crop, flip only).

timm's ``PosterizeIncreasing`` at magnitude 10 (``mstd0.5`` clipped at the top) keeps 0 bits,
which the installed Pillow refuses ("bits must be between 1 and 8") where older Pillow gave
an all-black image; timm's side runs with that older meaning (:func:`posterize_zero_bits`)
rather than crash mid-run.

Repeated augmentation (``--aug-repeats 3``) is left out: timm's loader supports it only
when distributed, and it changes which files are read, not the work per image.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from dali_gridaug.bench.registry import Benchmark, Settings, proc_cpu_seconds, suite
from dali_gridaug.bench.suites.loaders import endless, gpu_skip

#: The DeiT recipe as timm ``train.py`` arguments (timm's names and defaults).
DEIT: dict[str, Any] = dict(
    aa="rand-m9-mstd0.5-inc1",
    train_interpolation="random",
    reprob=0.25,
    remode="pixel",
    recount=1,
    resplit=False,
    mixup=0.8,
    cutmix=1.0,
    cutmix_minmax=None,
    mixup_prob=1.0,
    mixup_switch_prob=0.5,
    mixup_mode="batch",
    smoothing=0.1,
    color_jitter=0.4,
)
#: The same with every augmentation off: random-resized crop and flip only.
PLAIN: dict[str, Any] = dict(DEIT, aa=None, reprob=0.0, mixup=0.0, cutmix=0.0, color_jitter=None)


def timm_args(settings: Settings, recipe: dict[str, Any]) -> argparse.Namespace:
    """The parsed arguments of timm's ``train.py`` for ``recipe`` at the run's sizes."""
    s = settings
    return argparse.Namespace(
        **recipe,
        scale=[0.08, 1.0],
        ratio=[3 / 4, 4 / 3],
        hflip=0.5,
        vflip=0.0,
        color_jitter_prob=None,
        grayscale_prob=None,
        gaussian_blur_prob=None,
        no_aug=False,
        train_crop_mode=None,
        aug_repeats=0,
        aug_splits=0,
        jsd_loss=False,
        batch_size=s.batch_size,
        validation_batch_size=None,
        workers=s.workers,
        seed=s.seed,
        num_classes=s.num_classes,
        distributed=False,
        model_dtype=None,
        device="cuda" if s.device == "gpu" else "cpu",
        naflex_loader=False,
        train_img_sizes=None,
        train_batch_sizes=None,
        train_size_probs=None,
        train_size_schedule="constant",
        train_batches_per_epoch=None,
        epoch_repeats=0.0,
        input_img_mode=None,
        train_num_samples=None,
        val_num_samples=None,
        target_key=None,
    )


def data_config(settings: Settings) -> dict[str, Any]:
    """``resolve_data_config``'s result without a model, at the run's image size."""
    from timm.data import resolve_data_config

    return resolve_data_config({"input_size": (3, settings.image_size, settings.image_size)})


def posterize_zero_bits() -> None:
    """Give timm's posterize ops Pillow's old meaning of ``bits_to_keep=0`` (an all-black
    image) before its transforms are built; idempotent.
    """
    from PIL import Image
    from timm.data import auto_augment

    original = auto_augment.posterize

    def posterize(img: Any, bits_to_keep: int, **kwargs: Any) -> Any:
        if bits_to_keep <= 0:
            return Image.new(img.mode, img.size)
        return original(img, bits_to_keep, **kwargs)

    for name, op in auto_augment.NAME_TO_OP.items():
        if op is original:
            auto_augment.NAME_TO_OP[name] = posterize


def _children_cpu_seconds() -> float:
    """CPU seconds of this process's live child processes (timm's workers)."""
    total = 0.0
    for tasks in Path("/proc/self/task").glob("*/children"):
        for pid in tasks.read_text().split():
            total += proc_cpu_seconds(int(pid))
    return total


class TimmRecipe(Benchmark):
    """One side (``impl``: ``"timm"`` or ``"dali"``) of the recipe (``recipe``)."""

    def __init__(self, settings: Settings, impl: str, recipe: str) -> None:
        super().__init__(settings)
        self.impl, self.recipe = impl, recipe
        self.differences: list[str] = []

    @classmethod
    def skip_reason(cls, settings: Settings, params: dict[str, Any]) -> str | None:
        try:
            import timm  # noqa: F401
        except ImportError:
            return "timm is not installed"
        return gpu_skip(settings) if settings.device == "gpu" else None

    def setup(self) -> None:
        from timm.data import create_dataset

        s = self.settings
        args = timm_args(s, DEIT if self.recipe == "deit" else PLAIN)
        config = data_config(s)
        dataset = create_dataset("", root=s.root, is_training=True)
        self.loader = (
            self._timm(dataset, args, config)
            if self.impl == "timm"
            else self._dali(dataset, args, config)
        )
        self.it = endless(self.loader)

    def _dali(self, dataset: Any, args: argparse.Namespace, config: dict[str, Any]) -> Any:
        """Ours; the mapping's written-down differences from timm (its warnings) are kept
        for :meth:`describe`.
        """
        from dali_gridaug.timm_loader import timm_loader

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            loader = timm_loader(dataset, args, config, is_training=True)
        self.differences = sorted({str(w.message) for w in caught if w.category is UserWarning})
        return loader

    @staticmethod
    def _timm(dataset: Any, args: argparse.Namespace, config: dict[str, Any]) -> Any:
        """The loader of timm, exactly as ``train.py`` builds it (prefetcher on)."""
        from timm.data import FastCollateMixup, create_loader

        posterize_zero_bits()
        collate_fn = None
        if args.mixup > 0 or args.cutmix > 0:
            collate_fn = FastCollateMixup(
                mixup_alpha=args.mixup,
                cutmix_alpha=args.cutmix,
                cutmix_minmax=None,
                prob=args.mixup_prob,
                switch_prob=args.mixup_switch_prob,
                mode=args.mixup_mode,
                label_smoothing=args.smoothing,
                num_classes=args.num_classes,
            )
        return create_loader(
            dataset,
            input_size=config["input_size"],
            batch_size=args.batch_size,
            is_training=True,
            re_prob=args.reprob,
            re_mode=args.remode,
            re_count=args.recount,
            re_split=args.resplit,
            scale=args.scale,
            ratio=args.ratio,
            hflip=args.hflip,
            vflip=args.vflip,
            color_jitter=args.color_jitter,
            auto_augment=args.aa,
            interpolation=args.train_interpolation,
            mean=config["mean"],
            std=config["std"],
            num_workers=args.workers,
            collate_fn=collate_fn,
            device=torch.device(args.device),
            use_prefetcher=True,
            persistent_workers=True,
        )

    def run(self) -> None:
        for _ in range(self.settings.batches):
            next(self.it)

    def cpu_seconds(self) -> float:
        return time.process_time() + _children_cpu_seconds()

    def teardown(self) -> None:
        self.it = self.loader = None

    def describe(self) -> dict[str, Any]:
        s = self.settings
        recipe = "DeiT (rand-m9-mstd0.5-inc1, RE 0.25 pixel, Mixup 0.8 + CutMix 1.0, ls 0.1)"
        if self.recipe != "deit":
            recipe = "random-resized crop + flip only"
        impl = (
            f"timm.data.create_loader ({s.workers} workers, PrefetchLoader"
            + (", FastCollateMixup, RandomErasing" if self.recipe == "deit" else "")
            + f" on {'cuda' if s.device == 'gpu' else 'cpu'})"
            if self.impl == "timm"
            else f"dali_gridaug.timm_loader ({s.workers} DALI threads, device {s.device})"
        )
        out = {"implementation": f"{impl}; recipe {recipe}", "recipe": self.recipe}
        return {**out, "differences": self.differences} if self.differences else out


suite(
    "timm-deit",
    lambda s: {
        "timm": {"impl": "timm", "recipe": "deit"},
        "dali": {"impl": "dali", "recipe": "deit"},
        "timm-plain": {"impl": "timm", "recipe": "plain"},
        "dali-plain": {"impl": "dali", "recipe": "plain"},
    },
    baseline="timm",
)(TimmRecipe)
