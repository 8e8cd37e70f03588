"""Every recipe field is used: changing any one changes what the trainer builds from the
recipe (loader arguments, Keep arguments, loss, model, optimizer or schedule)."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from dali_gridaug.recipes import Recipe, load_recipe
from dali_gridaug.saliency import KeepStage
from dali_gridaug.saliency.grid import GRIDMASK_FIELDS

HAS_BOX = "box" in inspect.signature(KeepStage).parameters


def trainer_parts() -> tuple[object, object]:
    """``build_optimizer`` and ``LRFactor`` of the trainer (``[optim]``, ``[schedule]``)."""
    from dali_gridaug.training.schedule import LRFactor, build_optimizer

    return build_optimizer, LRFactor


def consumers(recipe: Recipe) -> dict[str, str]:
    """What the trainer builds from a recipe, as comparable text."""
    import torch

    from dali_gridaug.recipes import build_criterion, build_model

    build_optimizer, lr_factor = trainer_parts()
    k, b = 5, 4
    torch.manual_seed(0)
    model = build_model(recipe, k)
    logits = torch.linspace(-2, 2, b * k).reshape(b, k)
    target = torch.softmax(torch.linspace(1, -1, b * k).reshape(b, k), 1)
    output: object = logits
    n = getattr(recipe.mixer, "n", 2)
    patch = torch.arange(b * n * n).reshape(b, n, n) % k
    if recipe.loss_kind == "gridmix":
        output = (logits, torch.linspace(-1, 1, b * k * n * n).reshape(b, k, n, n))
    elif recipe.keep is not None and recipe.keep.saliency == "early":
        output = (logits, logits.flip(1))
    batch = type("B", (), {"target": target, "patch_labels": patch})()
    opt = build_optimizer(model, recipe)
    factor = lr_factor(recipe, 4)
    return {
        "loader": repr((recipe.loader_config(True), recipe.loader_config(False))),
        "keep": repr(recipe.keep_kwargs()),
        "loss": repr((recipe.loss_kind, build_criterion(recipe)(output, batch).item())),
        "model": repr(
            [
                (name, tuple(p.shape), bool(p.abs().sum() == 0))
                for name, p in model.named_parameters()
            ]
        ),
        "optim": repr([{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]),
        "schedule": repr([factor(t) for t in range(recipe.schedule.epochs * 4)]),
    }


SMALL = {"model.name": "resnet18", "data.image_size": 64, "data.batch_size": 8}
KEEP_PASTE = ("imagenet_keepautoaugment", {**SMALL, "keep.length": 16})
KEEP_GRID = ("imagenet_keepgridmask", SMALL)
EARLY = ("imagenet_keepautoaugment", {**SMALL, "keep.length": 16, "keep.saliency": "early"})
DEMO = ("demo", {})
STEP = ("cifar10_cutout", {})
GRIDMIX = ("imagenet_gridmix", {**SMALL, "schedule.epochs": 2, "schedule.milestones": [1]})
# field → (base recipe, its overrides, a new value for the field)
PERTURB = {
    "model.name": (*DEMO, "resnet34"),
    "model.cifar_stem": (*DEMO, True),
    "model.zero_init_residual": (*DEMO, True),
    "optim.lr": (*DEMO, 0.05),
    "optim.momentum": (*DEMO, 0.8),
    "optim.nesterov": (*DEMO, False),
    "optim.weight_decay": (*DEMO, 1e-3),
    "optim.no_wd_bn_bias": (*DEMO, False),
    "schedule.name": (*DEMO, "step"),
    "schedule.epochs": (*DEMO, 5),
    "schedule.warmup_epochs": (*DEMO, 1.5),
    "schedule.milestones": ("cifar10_cutout", {"schedule.epochs": 3}, [1]),
    "schedule.gamma": ("cifar10_cutout", {"schedule.epochs": 70}, 0.5),
    "schedule.min_lr": (*DEMO, 1e-3),
    "data.image_size": (*DEMO, 48),
    "data.batch_size": (*DEMO, 16),
    "data.val_batch_size": (*DEMO, 8),
    "data.mean": (*DEMO, [120.0, 110.0, 100.0]),
    "data.std": (*DEMO, [60.0, 60.0, 60.0]),
    "data.auto_augment": (*DEMO, "rand_augment"),
    "data.preset": (*DEMO, "cifar"),
    "data.color_jitter": (*DEMO, 0.4),
    "data.lighting": (*DEMO, 0.1),
    "data.workers": (*DEMO, 2),
    "data.invariant_crop": (*DEMO, False),
    "data.interpolation": (*DEMO, "bicubic"),
    "data.hflip": (*DEMO, 0.0),
    "data.vflip": (*DEMO, 0.5),
    "data.hw_decoder_load": (*DEMO, 0.5),
    "data.drop_last": (*DEMO, False),
    "data.aug_repeats": (*DEMO, 3),
    "loss.name": (*DEMO, "soft_ce"),
    "loss.gamma": (*GRIDMIX, 0.3),
    "loss.label_smoothing": (*DEMO, 0.1),
    "keep.method": (*KEEP_PASTE, "cutout"),
    "keep.tau": (*KEEP_PASTE, 0.5),
    "keep.length": (*KEEP_PASTE, 32),
    "keep.saliency": (*KEEP_PASTE, "lowres"),
    "keep.alpha": (*KEEP_PASTE, 0.5),
    "keep.draws": (*KEEP_GRID, 4),
    "keep.box": (*KEEP_PASTE, "clip"),
    "keep.gridmask.r": (*KEEP_GRID, 0.5),
    "keep.gridmask.d": (*KEEP_GRID, [16, 40]),
    "keep.gridmask.rotate": (*KEEP_GRID, 90),
    "keep.gridmask.mode": (*KEEP_GRID, 0),
    "keep.early_weight": (*EARLY, 0.5),
}


def schema_fields() -> set[str]:
    from dali_gridaug import recipes

    out = set()
    for section in recipes.SECTIONS:
        for f in dataclasses.fields(getattr(recipes, f"{section.capitalize()}Section")):
            if f.name == "options":  # [data]'s loader options
                from dali_gridaug.recipes.sections import DATA_OPTIONS

                out |= {f"data.{name}" for name in DATA_OPTIONS}
            elif f.name == "gridmask":  # the [keep.gridmask] table: a GridMask, Keep's fields
                out |= {f"keep.gridmask.{name}" for name in GRIDMASK_FIELDS}
            else:
                out.add(f"{section}.{f.name}")
    return out


def test_perturbation_table_covers_every_field() -> None:
    assert set(PERTURB) == schema_fields()  # a new field needs a row here (and a consumer)


@pytest.mark.parametrize("field", sorted(PERTURB))
@pytest.mark.slow
def test_every_field_changes_what_the_trainer_builds(field: str) -> None:
    if field == "keep.box" and not HAS_BOX:
        pytest.xfail("KeepStage(box=…) from the keep branch")
    name, overrides, value = PERTURB[field]
    base = load_recipe(name).override(overrides)
    changed = base.override({field: value})
    before, after = consumers(base), consumers(changed)
    assert before != after, f"{field} = {value!r} changes nothing the trainer builds"
