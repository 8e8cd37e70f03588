"""Recipe errors: a wrong key or value fails with a message naming the file, the table, the
key, the valid range and the value; an unknown recipe name lists the packaged ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from dali_gridaug.errors import UsageError
from dali_gridaug.recipes import RecipeError, load_recipe

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
    data_key("std = [1, 2, 0]", r"`data\.std` must be positive"),
    data_key("lighting = -0.1", r"`data\.lighting\.std` must be in \[0,"),
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
    # GridMask's own fields that the Keep stage does not use are not recipe keys
    new_table(
        '[keep]\nmethod = "gridmask"\n[keep.gridmask]\np = 0.5',
        r"\[keep\.gridmask\] unknown key 'p'; valid keys: r, d, rotate, mode",
    ),
    new_table(
        '[keep]\nmethod = "gridmask"\n[keep.gridmask]\nd = [5, 5]',
        r"`keep\.gridmask\.d` must satisfy min < max, got \(5, 5\)",
    ),
    new_table(
        '[keep]\nmethod = "gridmask"\n[keep.gridmask]\nrotate = 1.5',
        r"`keep\.gridmask\.rotate` must be int, got 1\.5 \(float\)",
    ),
    new_table(
        '[keep]\nmethod = "gridmask"\ngridmask = 3', r"\[keep\.gridmask\] must be a table, got 3"
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
