"""Recipe files: every ready pipeline loads, carries its paper's values, gives the same loader
arguments as before the pydantic schema, uses every field, and a wrong key or value fails
with a message naming the file, the table, the key, the valid range and the value."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import pytest

from dali_gridaug import AUGMENTATIONS, CutMix, Cutout, GridMask, GridMix, create_loader
from dali_gridaug.constants import IMAGENET_MEAN, IMAGENET_STD
from dali_gridaug.errors import UsageError
from dali_gridaug.recipes import (
    Recipe,
    RecipeError,
    available_recipes,
    load_recipe,
    parse_value,
    recipe_dir,
)
from dali_gridaug.saliency import KeepGridMaskConfig, KeepStage

REPO = Path(__file__).resolve().parents[1]
EXPECTED = {
    "cifar10_cutmix",
    "cifar10_cutout",
    "cifar10_gridmask",
    "demo",
    "imagenet_cutmix",
    "imagenet_gridmask",
    "imagenet_gridmix",
    "imagenet_keepautoaugment",
    "imagenet_keepcutmix",
    "imagenet_keepgridmask",
    "imagenet_mixup_cutmix",
}

# Library pieces other branches add; the recipes that need them wait on these.
HAS_BOX = "box" in inspect.signature(KeepStage).parameters
HAS_MIXUP = "mixup_cutmix" in AUGMENTATIONS
LOADER_ARGS = set(inspect.signature(create_loader).parameters)
WAITS = {
    "imagenet_keepcutmix": (not HAS_BOX, "KeepStage(box=…) from the keep branch"),
    "imagenet_mixup_cutmix": (not HAS_MIXUP, "AUGMENTATIONS['mixup_cutmix'] from mixfamily"),
}


def ready(name: str) -> object:
    waits, reason = WAITS.get(name, (False, ""))
    return pytest.param(name, marks=pytest.mark.xfail(waits, reason=reason, strict=True))


VALID = """
description = "test"
[optim]
lr = 0.1
[schedule]
epochs = 4
milestones = [2, 3]
[data]
image_size = 64
batch_size = 8
[[augment]]
name = "gridmask"
r = 0.6
d = [16, 40]
"""


def write(tmp_path: Path, text: str, name: str = "demo.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", [ready(n) for n in sorted(EXPECTED)])
def test_every_recipe_loads_and_validates(name: str) -> None:
    recipe = load_recipe(name)
    assert isinstance(recipe, Recipe)
    assert recipe.name == name and recipe.description
    assert recipe.loss_kind in ("ce", "soft_ce", "gridmix")
    # the stored form reloads to the same recipe (what a checkpoint keeps)
    assert recipe.override({}) == dataclasses.replace(recipe)


# create_loader keywords other branches add: mixfamily (preset, colour ops), graph (smoothing)
LOADER_WAITS = {"preset": "mixfamily", "color_jitter": "mixfamily", "lighting": "mixfamily"}
LOADER_WAITS["label_smoothing"] = "graph"


@pytest.mark.parametrize("name", [ready(n) for n in sorted(EXPECTED)])
def test_create_loader_takes_every_recipe_argument(name: str) -> None:
    recipe = load_recipe(name)
    for train in (True, False):
        unknown = set(recipe.loader_kwargs(train)) - LOADER_ARGS
        if unknown and unknown <= set(LOADER_WAITS):
            branches = sorted({LOADER_WAITS[k] for k in unknown})
            pytest.xfail(f"create_loader({', '.join(sorted(unknown))}=…) from {branches}")
        assert not unknown, f"create_loader lacks {unknown}"


def test_pipelines_folder_is_the_single_source() -> None:
    assert recipe_dir() == REPO / "pipelines"
    assert set(available_recipes()) == EXPECTED
    files = list((REPO / "pipelines").iterdir())
    assert not [p for p in files if p.is_symlink()], "pipelines/ must hold files, not links"
    assert {p.suffix for p in files} <= {".toml", ".md"}
    names = {p.name for p in files}
    copies = [p for p in (REPO / "dali_gridaug").rglob("*.toml") if p.name in names]
    assert not copies, "a second copy in the package"
    readme = (REPO / "pipelines" / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in EXPECTED)


PYPROJECT = (REPO / "pyproject.toml").read_text()


@pytest.mark.xfail(
    '"dali_gridaug.pipelines" = "pipelines"' not in PYPROJECT,
    reason="pyproject.toml maps dali_gridaug.pipelines to pipelines/ (coordinator)",
    strict=True,
)
@pytest.mark.slow
def test_installed_package_carries_the_pipelines(tmp_path: Path) -> None:
    import shutil
    import subprocess
    import sys

    src = tmp_path / "src"  # build from a copy: setuptools writes build/ next to the sources
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, src / name)
    for folder in ("dali_gridaug", "pipelines"):
        shutil.copytree(REPO / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run([*pip, "--target", str(target), str(src)], check=True, capture_output=True)
    installed = target / "dali_gridaug" / "pipelines"
    assert {p.stem for p in installed.glob("*.toml")} == EXPECTED
    # an explicit package list must name every subpackage
    packages = {p.parent.relative_to(REPO) for p in (REPO / "dali_gridaug").rglob("__init__.py")}
    assert all((target / p / "__init__.py").is_file() for p in packages), packages
    for name in EXPECTED:
        assert (installed / f"{name}.toml").read_bytes() == (
            REPO / "pipelines" / f"{name}.toml"
        ).read_bytes()
    code = "from dali_gridaug.recipes import recipe_dir, load_recipe; print(recipe_dir()); "
    code += "print(load_recipe('demo').path)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == [str(installed), str(installed / "demo.toml")]


# Each recipe's [[augment]] list: the papers' values (the demo's are scaled to 64 px).
PAPER_AUGMENT = {
    "cifar10_cutmix": (CutMix(alpha=1.0, p=0.5),),
    "cifar10_cutout": (Cutout(length=16, p=1.0),),
    "cifar10_gridmask": (GridMask(r=0.4, d=(24, 33), rotate=1, mode=1, p=0.8, ramp_epochs=160),),
    "demo": (GridMask(r=0.6, d=(16, 40), rotate=360, mode=1, p=0.5, ramp_epochs=0),),
    "imagenet_cutmix": (CutMix(alpha=1.0, p=1.0),),
    "imagenet_gridmask": (
        GridMask(r=0.6, d=(96, 224), rotate=360, mode=1, p=0.8, ramp_epochs=240),
    ),
    "imagenet_gridmix": (GridMix(n=4, p=0.8),),
    "imagenet_keepautoaugment": (),
    "imagenet_keepcutmix": (),
}


def test_paper_values() -> None:
    gm = load_recipe("imagenet_gridmask")
    assert gm.augment == PAPER_AUGMENT["imagenet_gridmask"]
    assert (gm.schedule.epochs, gm.schedule.milestones, gm.optim.lr) == (300, (100, 200, 265), 0.1)
    assert (gm.model.name, gm.data.batch_size, gm.loss_kind) == ("resnet50", 256, "ce")
    assert gm.data.color_jitter is None and gm.data.lighting is None  # "no augmentation on color"

    cm = load_recipe("imagenet_cutmix")
    assert cm.augment == PAPER_AUGMENT["imagenet_cutmix"]
    assert (cm.schedule.epochs, cm.schedule.milestones, cm.loss_kind) == (
        300,
        (75, 150, 225),
        "soft_ce",
    )
    for name in ("imagenet_cutmix", "imagenet_gridmix", "imagenet_keepautoaugment"):
        data = load_recipe(name).data  # clovaai: ColorJitter(0.4, 0.4, 0.4) + Lighting(0.1)
        assert (data.preset, data.color_jitter, data.lighting) == ("imagenet", 0.4, 0.1)

    gx = load_recipe("imagenet_gridmix")
    assert gx.augment == PAPER_AUGMENT["imagenet_gridmix"]
    assert (gx.loss_kind, gx.loss.gamma) == ("gridmix", 0.15)

    ka = load_recipe("imagenet_keepautoaugment")
    assert ka.keep is not None and (ka.keep.method, ka.keep.length) == ("paste", 112)
    assert ka.data.auto_augment == "auto_augment"

    kg = load_recipe("imagenet_keepgridmask")
    assert kg.keep_kwargs()["gridmask"] == KeepGridMaskConfig(r=0.6, d=(96, 224), rotate=360)
    assert kg.keep_kwargs()["draws"] == 8

    from dali_gridaug.presets import ColorJitter

    listed = load_recipe("demo").override({"data.color_jitter": [0.4, 0.3, 0.2]})
    assert listed.loader_kwargs()["color_jitter"] == ColorJitter(0.4, 0.3, 0.2)

    c_gm = load_recipe("cifar10_gridmask")
    assert c_gm.augment == PAPER_AUGMENT["cifar10_gridmask"]
    assert c_gm.data.image_size == 32 and c_gm.model.cifar_stem
    for name in ("cifar10_cutout", "cifar10_cutmix"):
        assert load_recipe(name).augment == PAPER_AUGMENT[name]
    for name in ("cifar10_gridmask", "cifar10_cutout", "cifar10_cutmix"):
        assert load_recipe(name).loader_kwargs(train=False)["preset"] == "cifar"


@pytest.mark.xfail(not HAS_BOX, reason="KeepStage(box=…) from the keep branch", strict=True)
def test_keepcutmix_uses_the_baselines_clipped_boxes() -> None:
    kc = load_recipe("imagenet_keepcutmix")
    assert kc.augment == () and kc.keep is not None
    assert (kc.keep.method, kc.keep.tau, kc.keep.alpha) == ("cutmix", 0.6, 1.0)
    assert kc.keep_kwargs()["box"] == "clip"
    assert "box" in (REPO / "pipelines" / "imagenet_keepcutmix.toml").read_text().split("[keep]")[0]


@pytest.mark.xfail(not HAS_MIXUP, reason="AUGMENTATIONS['mixup_cutmix'] (mixfamily)", strict=True)
def test_deit_recipe() -> None:
    r = load_recipe("imagenet_mixup_cutmix")
    mix = r.mixer
    assert (mix.name, mix.mixup_alpha, mix.cutmix_alpha, mix.switch_prob) == (
        "mixup_cutmix",
        0.8,
        1.0,
        0.5,
    )
    assert r.loader_kwargs()["label_smoothing"] == 0.1  # the one knob, on the loader
    assert (r.schedule.name, r.schedule.epochs, r.schedule.warmup_epochs) == ("cosine", 300, 5)


# The trainer's loader arguments before the pydantic schema (main at d93bae5, train.py
# Trainer.__init__), per recipe: (image_size, global batch, mean, auto_augment, keep_clean),
# and the augment list of PAPER_AUGMENT; std follows mean (CIFAR or ImageNet statistics).
CIFAR_MEAN, CIFAR_STD = (125.307, 122.961, 113.8575), (62.9932, 62.0887, 66.7048)
BEFORE = {
    "cifar10_cutmix": (32, 64, CIFAR_MEAN, None, False),
    "cifar10_cutout": (32, 128, CIFAR_MEAN, None, False),
    "cifar10_gridmask": (32, 128, CIFAR_MEAN, None, False),
    "demo": (64, 32, IMAGENET_MEAN, None, False),
    "imagenet_cutmix": (224, 256, IMAGENET_MEAN, None, False),
    "imagenet_gridmask": (224, 256, IMAGENET_MEAN, None, False),
    "imagenet_gridmix": (224, 256, IMAGENET_MEAN, None, False),
    "imagenet_keepautoaugment": (224, 256, IMAGENET_MEAN, "auto_augment", True),
    "imagenet_keepcutmix": (224, 256, IMAGENET_MEAN, None, False),
}
NEW_KEYS = {"preset", "color_jitter", "lighting", "label_smoothing", "num_threads"}


@pytest.mark.parametrize("name", [ready(n) for n in sorted(BEFORE)])
def test_loader_kwargs_same_as_before(name: str) -> None:
    size, batch, mean, auto, clean = BEFORE[name]
    augment = PAPER_AUGMENT[name]
    std = CIFAR_STD if mean == CIFAR_MEAN else IMAGENET_STD
    recipe = load_recipe(name)
    train = recipe.loader_kwargs(train=True, world_size=4)
    assert {k: v for k, v in train.items() if k not in NEW_KEYS} == {
        "batch_size": batch // 4,
        "image_size": size,
        "mean": mean,
        "std": std,
        "augment": augment,
        "auto_augment": auto,
        "keep_clean": clean,
    }
    val = recipe.loader_kwargs(train=False, world_size=4)
    assert {k: v for k, v in val.items() if k not in NEW_KEYS} == {
        "batch_size": batch // 4,
        "image_size": size,
        "mean": mean,
        "std": std,
    }
    # the new keys appear only where the file sets them
    text = (REPO / "pipelines" / f"{name}.toml").read_text()
    for key in NEW_KEYS & set(train):
        assert re.search(rf"^{'workers' if key == 'num_threads' else key} = ", text, re.M)


def test_load_by_path(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path, VALID))
    assert recipe.name == "demo" and recipe.optim.lr == 0.1
    assert recipe.schedule.milestones == (2, 3) and recipe.augment[0].d == (16, 40)


def data_key(line: str, message: str) -> tuple[str, str, str]:
    """A ``BAD`` row adding ``line`` to VALID's ``[data]`` table."""
    return "batch_size = 8", f"batch_size = 8\n{line}", message


def new_table(text: str, message: str) -> tuple[str, str, str]:
    """A ``BAD`` row adding the TOML table(s) ``text`` before VALID's ``[data]``, or before
    its ``[optim]`` for a ``[model]`` table."""
    anchor = "[optim]" if text.startswith("[model]") else "[data]"
    return anchor, f"{text}\n{anchor}", message


BAD = [
    # (replace this, with this, message pattern)
    ("lr = 0.1", "lrr = 0.1", r"recipe demo\.toml: \[optim\] unknown key 'lrr'; valid keys: lr,"),
    ("r = 0.6", "r = 1.5", r"recipe demo\.toml: `augment\[0\]\.r` must be in \(0, 1\), got 1\.5"),
    ("d = [16, 40]", "d = [16, 40]\ndd = 3", r"\[\[augment\]\] 0 \(gridmask\) unknown key 'dd'"),
    ('name = "gridmask"', 'name = "gridmusk"', r"`augment\[0\]\.name` must be one of .*'gridmix'"),
    ("lr = 0.1", "lr = -1", r"`optim\.lr` must be in \(0, inf\), got -1"),
    ("lr = 0.1", 'lr = "fast"', r"`optim\.lr` must be float, got 'fast' \(str\)"),
    ("epochs = 4", "epochs = 4.5", r"`schedule\.epochs` must be int, got 4\.5"),
    ("milestones = [2, 3]", "milestones = [3, 2]", r"`schedule\.milestones` must be strictly"),
    ("[optim]", "[optimizer]", r"unknown top-level key 'optimizer'"),
    new_table('[loss]\nname = "gridmix"', r"`loss\.name`='gridmix' needs a gridmix"),
    new_table('[loss]\nname = "focal"', r"`loss\.name` must be one of 'auto', 'ce'"),
    ("d = [16, 40]", "d = [80, 90]", r"augment\[0\]: GridMask: `d` min must be ≤ the image side"),
    new_table('[keep]\nmethod = "paste"', r"`keep\.method`='paste' .* `data\.auto_augment`"),
    new_table('[keep]\nmethod = "cut"', r"`keep\.method` must be one of 'cutout'"),
    ("lr = 0.1", "lr = 0.1 0.2", r"recipe demo\.toml: invalid TOML"),
    # checks added with the schema: before any loader is built, naming table and key
    ("[data]\nimage_size = 64\nbatch_size = 8", "", r"recipe demo\.toml: missing table \[data\]"),
    new_table('[model]\nname = "resnet5O"', r"`model\.name` must be a torchvision .*"),
    new_table('[model]\nname = "resnt50"', r"did you mean resnet50"),
    new_table('[model]\nname = "vgg11"\ncifar_stem = true', r"cifar_stem` needs a"),
    data_key("workers = 0", r"`data\.workers` must be in \[1, inf\)"),
    data_key('workers = "4"', r"`data\.workers` must be int"),
    data_key('preset = "cifr"', r"`data\.preset` must be one of"),
    data_key("mean = [1, 2]", r"`data\.mean`"),
    data_key("std = [1, 2, 300]", r"`data\.std\[2\]` must be in"),
    data_key("lighting = -0.1", r"`data\.lighting` must be in \(0,"),
    data_key(
        "color_jitter = [0.4, -1, 0.4]",
        r"`data\.color_jitter\.contrast` must be in \[0, inf\), got -1",
    ),
    new_table("[loss]\nlabel_smoothing = 1.0", r"`loss\.label_smoothing` must be in"),
    new_table("[keep]\ntau = 1.5", r"`keep\.tau` must be in \(0, 1\), got 1\.5"),
    new_table('[keep]\nbox = "outside"', r"`keep\.box` must be one of 'clip'"),
    new_table("[keep]\ndraws = 0", r"`keep\.draws` must be in \[1, inf\), got 0"),
    new_table("[keep.gridmask]\nr = 0.5", r"\[keep\.gridmask\] is used by .*'gridmask'"),
    new_table(
        '[keep]\nmethod = "gridmask"\n[keep.gridmask]\nr = 2.0',
        r"`keep\.gridmask\.r` must be in \(0, 1[\])], got 2\.0",
    ),
    new_table(
        '[keep]\nmethod = "gridmask"\n[keep.gridmask]\nrr = 0.5',
        r"\[keep\.gridmask\] unknown key 'rr'; valid keys: r, d, rotate, mode",
    ),
]


@pytest.mark.parametrize(("old", "new", "message"), BAD, ids=[b[2][:40] for b in BAD])
def test_wrong_key_or_value_names_it(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in VALID
    path = write(tmp_path, VALID.replace(old, new, 1))
    with pytest.raises(RecipeError, match=message) as info:
        load_recipe(path)
    assert isinstance(info.value, UsageError)  # the CLI prints it as one line, exit 2


def test_keep_cannot_follow_mixing(tmp_path: Path) -> None:
    text = VALID + '[[augment]]\nname = "cutmix"\n[keep]\nmethod = "cutout"\n'
    with pytest.raises(RecipeError, match=r"\[keep\] mixes on its own; .* \(cutmix\)"):
        load_recipe(write(tmp_path, text))


def test_unknown_recipe_lists_the_packaged_ones(tmp_path: Path) -> None:
    with pytest.raises(
        RecipeError, match=r"unknown recipe 'imagenet_gridmsk'; .*imagenet_gridmask"
    ):
        load_recipe("imagenet_gridmsk")
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe(tmp_path / "missing.toml")


def test_override_is_validated_like_the_file() -> None:
    recipe = load_recipe("imagenet_gridmask")
    small = recipe.override(
        {"schedule.epochs": 2, "data.image_size": 64, "augment[0].d": (16, 40), "optim.lr": None}
    )
    assert small.schedule.epochs == 2 and small.augment[0].d == (16, 40)
    assert small.optim.lr == recipe.optim.lr  # None = not given
    assert recipe.schedule.epochs == 300  # frozen original untouched
    with pytest.raises(RecipeError, match=r"\[optim\] unknown key 'lrr'"):
        recipe.override({"optim.lrr": 1.0})
    with pytest.raises(RecipeError, match=r"`augment\[0\]\.r` must be in \(0, 1\), got 2"):
        recipe.override({"augment[0].r": 2})
    with pytest.raises(RecipeError, match=r"has 1 \[\[augment\]\] entries"):
        recipe.override({"augment[3].r": 0.5})
    with pytest.raises(RecipeError, match=r"cannot override 'lr'"):
        recipe.override({"lr": 0.5})
    # the ImageNet period does not fit a 64 px crop: named, with the image side
    with pytest.raises(RecipeError, match=re.escape("`d` min must be ≤ the image side 64")):
        recipe.override({"data.image_size": 64})
    # nested tables by dotted key
    kg = load_recipe("imagenet_keepgridmask").override({"keep.gridmask.r": 0.5})
    assert kg.keep_kwargs()["gridmask"].r == 0.5
    with pytest.raises(RecipeError, match=r"not divisible by the 3 ranks"):
        recipe.loader_kwargs(world_size=3)


def test_parse_value() -> None:
    assert parse_value("0.2") == 0.2
    assert parse_value("true") is True
    assert parse_value("[30, 60]") == [30, 60]
    assert parse_value('"x"') == "x"
    assert parse_value("resnet34") == "resnet34"


# -- every field is used ------------------------------------------------------------------------


def trainer_parts() -> tuple[object, object]:
    """``build_optimizer`` and ``LRFactor`` of the trainer (``[optim]``, ``[schedule]``)."""
    from dali_gridaug.training.schedule import LRFactor, build_optimizer

    return build_optimizer, LRFactor


def consumers(recipe: Recipe) -> dict[str, str]:
    """What the trainer builds from a recipe, as comparable text."""
    import torch

    from dali_gridaug.models import build_criterion, build_model

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
        "loader": repr((recipe.loader_kwargs(True), recipe.loader_kwargs(False))),
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
            if f.name == "gridmask":  # the [keep.gridmask] table
                grid = dataclasses.fields(recipes.KeepGridMaskSection)
                out |= {f"keep.gridmask.{g.name}" for g in grid}
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


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("cifar10_cutmix", 32),
        ("imagenet_cutmix", 48),
        pytest.param("imagenet_mixup_cutmix", 48, marks=pytest.mark.slow),  # RandAugment graph
    ],
)
def test_recipe_builds_a_working_loader(sample_data: dict[str, Path], name: str, size: int) -> None:
    import torch

    recipe = load_recipe(name).override({"data.image_size": size, "data.batch_size": 8})
    loader = create_loader(sample_data["train"], device="cpu", seed=0, **recipe.loader_kwargs())
    batch = next(iter(loader))
    assert batch.images.shape == (8, 3, size, size)
    k = loader.num_classes
    assert batch.target.shape == (8, k) and batch.target.dtype == torch.float32
    torch.testing.assert_close(batch.target.sum(1), torch.ones(8))
    eps = recipe.loss.label_smoothing
    assert float(batch.target.min()) >= eps / k - 1e-6  # smoothed once, by the loader
    val = create_loader(sample_data["val"], device="cpu", **recipe.loader_kwargs(train=False))
    assert next(iter(val)).images.shape[-2:] == (size, size)
