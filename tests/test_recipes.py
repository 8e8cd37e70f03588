"""Recipe files: every packaged recipe loads, carries its paper's values, and a wrong key or
value fails with a message naming the file, the key, the valid range and the value."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from dali_gridaug import CutMix, Cutout, GridMask, GridMix
from dali_gridaug.recipes import (
    Recipe,
    RecipeError,
    available_recipes,
    load_recipe,
    parse_value,
    recipe_dir,
)

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
}

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


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_recipe_loads_and_validates(name: str) -> None:
    recipe = load_recipe(name)
    assert isinstance(recipe, Recipe)
    assert recipe.name == name and recipe.description
    assert recipe.loss_kind in ("ce", "soft_ce", "gridmix")
    # the stored form reloads to the same recipe (what a checkpoint keeps)
    assert recipe.override({}) == dataclasses.replace(recipe)


def test_packaged_set_and_pipelines_folder_agree() -> None:
    assert set(available_recipes()) == EXPECTED
    # pipelines/ holds the same files (links into the package), one per recipe
    for name in EXPECTED:
        entry = REPO / "pipelines" / f"{name}.toml"
        assert entry.is_file(), f"pipelines/{name}.toml is missing"
        assert entry.read_bytes() == (recipe_dir() / f"{name}.toml").read_bytes()
        assert load_recipe(entry) == load_recipe(name)
    extra = {p.stem for p in (REPO / "pipelines").glob("*.toml")} - EXPECTED
    assert not extra, f"pipelines/ has recipes the package lacks: {extra}"


def test_paper_values() -> None:
    gm = load_recipe("imagenet_gridmask")
    assert gm.augment == (GridMask(r=0.6, d=(96, 224), rotate=360, mode=1, p=0.8, ramp_epochs=240),)
    assert (gm.schedule.epochs, gm.schedule.milestones, gm.optim.lr) == (300, (100, 200, 265), 0.1)
    assert (gm.model.name, gm.data.batch_size, gm.loss_kind) == ("resnet50", 256, "ce")

    cm = load_recipe("imagenet_cutmix")
    assert cm.augment == (CutMix(alpha=1.0, p=1.0),)
    assert (cm.schedule.epochs, cm.schedule.milestones, cm.loss_kind) == (
        300,
        (75, 150, 225),
        "soft_ce",
    )

    gx = load_recipe("imagenet_gridmix")
    assert gx.augment == (GridMix(n=4, p=0.8),)
    assert (gx.loss_kind, gx.loss.gamma) == ("gridmix", 0.15)

    kc = load_recipe("imagenet_keepcutmix")
    assert kc.augment == () and kc.keep is not None
    assert (kc.keep.method, kc.keep.tau, kc.keep.alpha) == ("cutmix", 0.6, 1.0)

    ka = load_recipe("imagenet_keepautoaugment")
    assert ka.keep is not None and (ka.keep.method, ka.keep.length) == ("paste", 112)
    assert ka.data.auto_augment == "auto_augment"

    c_gm = load_recipe("cifar10_gridmask")
    assert c_gm.augment == (GridMask(r=0.4, d=(24, 33), rotate=1, mode=1, p=0.8, ramp_epochs=160),)
    assert c_gm.data.image_size == 32 and c_gm.model.cifar_stem
    assert load_recipe("cifar10_cutout").augment == (Cutout(length=16, p=1.0),)
    assert load_recipe("cifar10_cutmix").augment == (CutMix(alpha=1.0, p=0.5),)


def test_load_by_path(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path, VALID))
    assert recipe.name == "demo" and recipe.optim.lr == 0.1
    assert recipe.schedule.milestones == (2, 3) and recipe.augment[0].d == (16, 40)


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
    ("[data]", '[loss]\nname = "gridmix"\n[data]', r"`loss\.name`='gridmix' needs a gridmix"),
    ("[data]", '[loss]\nname = "focal"\n[data]', r"`loss\.name` must be one of 'auto', 'ce'"),
    ("d = [16, 40]", "d = [80, 90]", r"augment\[0\]: GridMask: `d` min must be ≤ the image side"),
    (
        "[data]",
        '[keep]\nmethod = "paste"\n[data]',
        r"`keep\.method`='paste' .* `data\.auto_augment`",
    ),
    ("[data]", '[keep]\nmethod = "cut"\n[data]', r"`keep\.method` must be one of 'cutout'"),
    ("lr = 0.1", "lr = 0.1 0.2", r"recipe demo\.toml: invalid TOML"),
]


@pytest.mark.parametrize(("old", "new", "message"), BAD, ids=[b[2][:40] for b in BAD])
def test_wrong_key_or_value_names_it(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in VALID
    path = write(tmp_path, VALID.replace(old, new, 1))
    with pytest.raises(RecipeError, match=message):
        load_recipe(path)


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


def test_parse_value() -> None:
    assert parse_value("0.2") == 0.2
    assert parse_value("true") is True
    assert parse_value("[30, 60]") == [30, 60]
    assert parse_value('"x"') == "x"
    assert parse_value("resnet34") == "resnet34"
