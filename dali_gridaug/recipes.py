"""Training recipes: paper settings as TOML files, loaded into frozen, validated dataclasses.

A recipe is data, not code. The files ship inside the package (``dali_gridaug/recipes/*.toml``,
so an installed wheel has them); ``pipelines/`` at the repository root links to the same files
for browsing and for ``--recipe pipelines/NAME.toml``. Schema (every key optional, defaults
below)::

    description = "one line"
    [model]      name, cifar_stem, zero_init_residual
    [optim]      lr, momentum, nesterov, weight_decay, no_wd_bn_bias
    [schedule]   name ("step" | "cosine"), epochs, warmup_epochs, milestones, gamma, min_lr
    [data]       image_size, batch_size (global, split over ranks), val_batch_size, mean, std,
                 auto_augment
    [[augment]]  name = a key of dali_gridaug.AUGMENTATIONS, then that config's arguments
    [loss]       name ("auto" | "ce" | "soft_ce" | "gridmix"), gamma, label_smoothing
    [keep]       method, tau, length, saliency, alpha, draws, early_weight

A wrong key or value fails at load time with the file, the key, the valid range and the value,
e.g. ``recipe demo.toml: [optim] unknown key 'lrr'`` or
``recipe demo.toml: `augment[0].r` must be in (0, 1), got 1.5``.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from dali_gridaug._validate import check_choice, check_range
from dali_gridaug.augment import AUGMENTATIONS, Augment
from dali_gridaug.constants import IMAGENET_MEAN, IMAGENET_STD

#: Loss choices: ``auto`` = CE for hard targets, soft-target CE for mixed ones, GridMix's loss
#: when the recipe mixes with GridMix.
LOSSES = ("auto", "ce", "soft_ce", "gridmix")
SCHEDULES = ("step", "cosine")
AUTO_AUGMENT = ("rand_augment", "auto_augment", "trivial_augment")
KEEP_METHODS = ("cutout", "cutmix", "gridmask", "paste")
KEEP_SALIENCY = ("full", "lowres", "early")


class RecipeError(ValueError):
    """A recipe file that cannot be loaded; the message names the file and the key."""


@dataclasses.dataclass(frozen=True)
class _Section:
    """Base of the ``[section]`` dataclasses: ``section`` names it in error messages."""

    section: ClassVar[str] = ""

    def _name(self, key: str) -> str:
        return f"{self.section}.{key}"


@dataclasses.dataclass(frozen=True)
class ModelSection(_Section):
    """``[model]``.

    Args:
        name: a ``torchvision.models`` classification builder (``resnet18``, ``resnet50``, …).
        cifar_stem: replace a ResNet's 7×7/2 stem and max-pool by a 3×3/1 convolution (the
            usual ResNet-18 for 32×32 CIFAR images).
        zero_init_residual: torchvision's zero-γ init of each residual branch's last BN.
    """

    name: str = "resnet50"
    cifar_stem: bool = False
    zero_init_residual: bool = False

    section: ClassVar[str] = "model"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.name):
            raise ValueError(f"`model.name` must be a torchvision model name, got {self.name!r}")


@dataclasses.dataclass(frozen=True)
class OptimSection(_Section):
    """``[optim]``: SGD with momentum.

    Args:
        lr: peak learning rate for the recipe's global ``data.batch_size``.
        momentum: SGD momentum in [0, 1).
        nesterov: Nesterov momentum.
        weight_decay: L2 weight decay ≥ 0.
        no_wd_bn_bias: no weight decay on BN parameters and biases (1-D tensors).
    """

    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    no_wd_bn_bias: bool = False

    section: ClassVar[str] = "optim"

    def __post_init__(self) -> None:
        check_range(self._name("lr"), self.lr, 0, low_open=True)
        check_range(self._name("momentum"), self.momentum, 0, 1, high_open=True)
        check_range(self._name("weight_decay"), self.weight_decay, 0)
        if self.nesterov and self.momentum == 0:
            raise ValueError("`optim.nesterov` needs `optim.momentum` > 0")


@dataclasses.dataclass(frozen=True)
class ScheduleSection(_Section):
    """``[schedule]``: learning rate per step, linear warmup then step or cosine decay.

    Args:
        name: ``"step"`` (× ``gamma`` at each of ``milestones``) or ``"cosine"`` (to
            ``min_lr`` at the end of ``epochs``).
        epochs: training epochs.
        warmup_epochs: linear warmup from ``lr / warmup steps`` to ``lr`` (may be fractional).
        milestones: epochs at which the step schedule multiplies the rate by ``gamma``
            (increasing; milestones past ``epochs`` never fire, so a short run of a long
            recipe keeps its rate).
        gamma: step decay factor in (0, 1].
        min_lr: final rate of the cosine schedule, ≥ 0.
    """

    name: Literal["step", "cosine"] = "step"
    epochs: int = 90
    warmup_epochs: float = 0.0
    milestones: tuple[int, ...] = (30, 60, 80)
    gamma: float = 0.1
    min_lr: float = 0.0

    section: ClassVar[str] = "schedule"

    def __post_init__(self) -> None:
        check_choice(self._name("name"), self.name, SCHEDULES)
        check_range(self._name("epochs"), self.epochs, 1)
        check_range(self._name("warmup_epochs"), self.warmup_epochs, 0)
        if self.warmup_epochs >= self.epochs:
            raise ValueError(
                f"`schedule.warmup_epochs` must be < `schedule.epochs`={self.epochs}, "
                f"got {self.warmup_epochs}"
            )
        for i, m in enumerate(self.milestones):
            check_range(f"schedule.milestones[{i}]", m, 1)
        if list(self.milestones) != sorted(set(self.milestones)):
            raise ValueError(
                f"`schedule.milestones` must be strictly increasing, got {list(self.milestones)}"
            )
        check_range(self._name("gamma"), self.gamma, 0, 1, low_open=True)
        check_range(self._name("min_lr"), self.min_lr, 0)


@dataclasses.dataclass(frozen=True)
class DataSection(_Section):
    """``[data]``.

    Args:
        image_size: training crop and validation centre-crop side in pixels.
        batch_size: **global** batch size, split evenly over the ranks.
        val_batch_size: global validation batch size (0: ``batch_size``).
        mean: per-channel mean in 0–255 pixel units.
        std: per-channel std in 0–255 pixel units.
        auto_augment: DALI ``auto_aug`` policy applied before normalization
            (``rand_augment``, ``auto_augment``, ``trivial_augment``); the loader then also
            returns the clean view for Keep's selective-paste ("": none).
    """

    image_size: int = 224
    batch_size: int = 256
    val_batch_size: int = 0
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    auto_augment: str = ""

    section: ClassVar[str] = "data"

    def __post_init__(self) -> None:
        check_range(self._name("image_size"), self.image_size, 8)
        check_range(self._name("batch_size"), self.batch_size, 1)
        check_range(self._name("val_batch_size"), self.val_batch_size, 0)
        for key in ("mean", "std"):
            values = getattr(self, key)
            if len(values) != 3:
                raise ValueError(f"`data.{key}` must list 3 per-channel values, got {values!r}")
            for i, v in enumerate(values):
                check_range(f"data.{key}[{i}]", v, 0, 255, low_open=key == "std")
        if self.auto_augment:
            check_choice(self._name("auto_augment"), self.auto_augment, AUTO_AUGMENT)


@dataclasses.dataclass(frozen=True)
class LossSection(_Section):
    """``[loss]``.

    Args:
        name: ``"auto"`` (CE for hard targets, soft-target CE when the batch target is a
            ``(B, K)`` distribution, GridMix's loss when the recipe mixes with GridMix),
            ``"ce"``, ``"soft_ce"`` or ``"gridmix"``.
        gamma: GridMix local-loss weight γ ≥ 0 (paper: 0.15).
        label_smoothing: smoothing ε of the hard-label CE, in [0, 1).
    """

    name: Literal["auto", "ce", "soft_ce", "gridmix"] = "auto"
    gamma: float = 0.15
    label_smoothing: float = 0.0

    section: ClassVar[str] = "loss"

    def __post_init__(self) -> None:
        check_choice(self._name("name"), self.name, LOSSES)
        check_range(self._name("gamma"), self.gamma, 0)
        check_range(self._name("label_smoothing"), self.label_smoothing, 0, 1, high_open=True)


@dataclasses.dataclass(frozen=True)
class KeepSection(_Section):
    """``[keep]``: the post-loader KeepAugment stage (:class:`dali_gridaug.saliency.KeepStage`).

    Args:
        method: ``"cutout"``, ``"cutmix"``, ``"gridmask"`` or ``"paste"`` (selective-paste
            after ``data.auto_augment``).
        tau: saliency quantile in (0, 1) (paper: 0.6).
        length: cut/paste window side in pixels (CIFAR-10: 16).
        saliency: ``"full"``, ``"lowres"`` or ``"early"`` (adds the early head to the model).
        alpha: Beta(α, α) of KeepCutMix, > 0.
        draws: KeepGridMask candidates per image, ≥ 1.
        early_weight: weight of the early head's auxiliary loss (paper: 0.3).
    """

    method: str = "cutout"
    tau: float = 0.6
    length: int = 16
    saliency: str = "full"
    alpha: float = 1.0
    draws: int = 8
    early_weight: float = 0.3

    section: ClassVar[str] = "keep"

    def __post_init__(self) -> None:
        check_choice(self._name("method"), self.method, KEEP_METHODS)
        check_range(self._name("tau"), self.tau, 0, 1, low_open=True, high_open=True)
        check_range(self._name("length"), self.length, 1)
        check_choice(self._name("saliency"), self.saliency, KEEP_SALIENCY)
        check_range(self._name("alpha"), self.alpha, 0, low_open=True)
        check_range(self._name("draws"), self.draws, 1)
        check_range(self._name("early_weight"), self.early_weight, 0)


_SECTIONS: dict[str, type[_Section]] = {
    "model": ModelSection,
    "optim": OptimSection,
    "schedule": ScheduleSection,
    "data": DataSection,
    "loss": LossSection,
    "keep": KeepSection,
}


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A validated recipe. Derive variants with :meth:`override` (re-validated).

    Attributes:
        name: the file stem (``imagenet_gridmask``).
        description: one line from the file.
        model, optim, schedule, data, loss: the sections.
        augment: augmentation configs, in application order (a mixing one last).
        keep: the Keep stage section, or ``None``.
        path: the file it was loaded from (not part of equality).
    """

    name: str
    description: str
    model: ModelSection
    optim: OptimSection
    schedule: ScheduleSection
    data: DataSection
    loss: LossSection
    augment: tuple[Augment, ...] = ()
    keep: KeepSection | None = None
    path: str = dataclasses.field(default="", compare=False)

    @property
    def mixer(self) -> Augment | None:
        """The mixing augmentation (CutMix/GridMix), if any."""
        return next((a for a in self.augment if a.mixing), None)

    @property
    def loss_kind(self) -> str:
        """The loss actually used: ``"ce"``, ``"soft_ce"`` or ``"gridmix"``."""
        if self.loss.name != "auto":
            return self.loss.name
        mixer = self.mixer
        if mixer is not None and mixer.name == "gridmix":
            return "gridmix"
        return "soft_ce" if mixer is not None or self.keep is not None else "ce"

    def override(self, values: Mapping[str, Any]) -> Recipe:
        """A copy with some values replaced, checked as if the file said so.

        Args:
            values: ``{"section.key": value}`` (``"optim.lr"``) or ``{"augment[i].key": value}``
                (``"augment[0].d"``); ``None`` values are ignored (unset command-line flags).
        """
        raw = self.to_dict()
        for dotted, value in values.items():
            if value is None:
                continue
            value = list(value) if isinstance(value, tuple) else value
            aug = re.fullmatch(r"augment\[(\d+)\]\.(\w+)", dotted)
            if aug is not None:
                i = int(aug.group(1))
                if i >= len(raw["augment"]):
                    raise RecipeError(
                        f"recipe {self.name}: cannot override {dotted!r}: the recipe has "
                        f"{len(raw['augment'])} [[augment]] entries"
                    )
                raw["augment"][i][aug.group(2)] = value
                continue
            section, _, key = dotted.partition(".")
            if section not in _SECTIONS or not key:
                raise RecipeError(
                    f"recipe {self.name}: cannot override {dotted!r}; use '<section>.<key>' "
                    f"with a section of {', '.join(_SECTIONS)}, or 'augment[<i>].<key>'"
                )
            raw.setdefault(section, {})[key] = value
        return _from_dict(raw, f"{self.name} (overridden)", self.name, self.path)

    def to_dict(self) -> dict[str, Any]:
        """The recipe as TOML-shaped data (lists for tuples), e.g. to store with a run."""
        out: dict[str, Any] = {"description": self.description}
        for key in _SECTIONS:
            section = getattr(self, key)
            if section is not None:
                out[key] = _plain(dataclasses.asdict(section))
        out["augment"] = [{"name": a.name, **_plain(dataclasses.asdict(a))} for a in self.augment]
        return out


def recipe_dir() -> Path:
    """The folder of the packaged recipe files (works from a checkout and from a wheel)."""
    return Path(str(importlib.resources.files("dali_gridaug") / "recipes"))


def available_recipes() -> list[str]:
    """Names of the packaged recipes."""
    return sorted(p.stem for p in recipe_dir().glob("*.toml"))


def load_recipe(name_or_path: str | Path) -> Recipe:
    """Load and validate a recipe by packaged name (``"imagenet_gridmask"``) or TOML path.

    Raises:
        RecipeError: unknown name, unreadable TOML, or an invalid key or value (the message
            names the file and the key).
    """
    path = Path(name_or_path)
    if not path.is_file():
        if path.suffix == ".toml" or len(path.parts) > 1:
            raise RecipeError(f"recipe file {str(path)!r} does not exist")
        path = recipe_dir() / f"{name_or_path}.toml"
        if not path.is_file():
            raise RecipeError(
                f"unknown recipe {str(name_or_path)!r}; packaged recipes: "
                f"{', '.join(available_recipes())} (or pass a .toml path)"
            )
    toml = _toml()
    try:
        raw = toml.loads(path.read_text())
    except toml.TOMLDecodeError as e:
        raise RecipeError(f"recipe {path.name}: invalid TOML: {e}") from None
    return _from_dict(raw, path.name, path.stem, str(path))


def parse_value(text: str) -> Any:
    """A command-line override value in TOML syntax (``0.2``, ``true``, ``[30, 60]``);
    bare words (``resnet34``) are strings.
    """
    toml = _toml()
    try:
        return toml.loads(f"v = {text}")["v"]
    except toml.TOMLDecodeError:
        return text


def _toml() -> Any:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    return tomllib


def _from_dict(raw: Mapping[str, Any], label: str, name: str, path: str) -> Recipe:
    where = f"recipe {label}"
    allowed = {"description", "augment", *_SECTIONS}
    for key in raw:
        if key not in allowed:
            raise RecipeError(
                f"{where}: unknown top-level key {key!r}; valid: {', '.join(sorted(allowed))}"
            )
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise RecipeError(f"{where}: `description` must be a string, got {description!r}")
    sections: dict[str, Any] = {}
    for key, cls in _SECTIONS.items():
        if key not in raw:
            sections[key] = None if key == "keep" else cls()
            continue
        if not isinstance(raw[key], Mapping):
            raise RecipeError(f"{where}: [{key}] must be a table, got {raw[key]!r}")
        sections[key] = _build(cls, raw[key], f"[{key}]", key, where)
    augment = _augments(raw.get("augment", []), where)
    recipe = Recipe(name=name, description=description, augment=augment, path=path, **sections)
    _check_consistency(recipe, where)
    return recipe


def _build(cls: type, values: Mapping[str, Any], table: str, prefix: str, where: str) -> Any:
    """Construct ``cls`` from a TOML table, rejecting unknown keys and wrong types."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise RecipeError(
                f"{where}: {table} unknown key {key!r}; valid keys: {', '.join(fields)}"
            )
        kwargs[key] = _coerce(f"{prefix}.{key}", value, hints[key], where)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise RecipeError(f"{where}: {e}") from None


def _coerce(name: str, value: Any, hint: Any, where: str) -> Any:
    """Check a TOML value against a field's annotation (ints are accepted for floats)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        if value not in args:
            raise RecipeError(
                f"{where}: `{name}` must be one of {', '.join(map(repr, args))}; got {value!r}"
            )
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise RecipeError(f"{where}: `{name}` must be a list, got {value!r}")
        return tuple(_coerce(f"{name}[{i}]", v, args[0], where) for i, v in enumerate(value))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (bool, int, float, str) and (
        not isinstance(value, hint) or (hint is not bool and isinstance(value, bool))
    ):
        raise RecipeError(
            f"{where}: `{name}` must be {hint.__name__}, got {value!r} ({type(value).__name__})"
        )
    return value


def _augments(entries: Any, where: str) -> tuple[Augment, ...]:
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
        raise RecipeError(f"{where}: `augment` must be an array of tables ([[augment]])")
    out = []
    for i, entry in enumerate(entries):
        label = f"augment[{i}]"
        kind = entry.get("name")
        if kind not in AUGMENTATIONS:
            raise RecipeError(
                f"{where}: `{label}.name` must be one of {', '.join(map(repr, AUGMENTATIONS))}; "
                f"got {kind!r}"
            )
        cls = AUGMENTATIONS[kind]
        fields = {f.name for f in dataclasses.fields(cls) if f.init}
        kwargs = {}
        for key, value in entry.items():
            if key == "name":
                continue
            if key not in fields:
                raise RecipeError(
                    f"{where}: [[augment]] {i} ({kind}) unknown key {key!r}; "
                    f"valid keys: {', '.join(sorted(fields))}"
                )
            kwargs[key] = tuple(value) if isinstance(value, list) else value
        try:
            out.append(cls(**kwargs))
        except (TypeError, ValueError) as e:
            # name the entry: "`r` must be …" → "`augment[0].r` must be …"
            message = re.sub(r"`([^`]+)`", rf"`{label}.\1`", str(e), count=1)
            if message == str(e):
                message = f"{label}: {message}"
            raise RecipeError(f"{where}: {message}") from None
    return tuple(out)


def _check_consistency(recipe: Recipe, where: str) -> None:
    """Rules that involve more than one section."""
    size, batch = recipe.data.image_size, recipe.data.batch_size
    for i, aug in enumerate(recipe.augment):
        try:
            aug.check_geometry(size, size, batch)
        except ValueError as e:
            raise RecipeError(f"{where}: augment[{i}]: {e}") from None
    mixing = [i for i, a in enumerate(recipe.augment) if a.mixing]
    if len(mixing) > 1 or (mixing and mixing[0] != len(recipe.augment) - 1):
        raise RecipeError(f"{where}: at most one mixing augmentation (cutmix/gridmix), last")
    mixer = recipe.mixer
    loss = recipe.loss.name
    if loss == "gridmix" and (mixer is None or mixer.name != "gridmix"):
        raise RecipeError(f"{where}: `loss.name`='gridmix' needs a gridmix [[augment]]")
    if loss == "ce" and (mixer is not None or recipe.keep is not None):
        raise RecipeError(
            f"{where}: `loss.name`='ce' takes hard labels, but this recipe mixes labels "
            "(use 'auto' or 'soft_ce')"
        )
    keep = recipe.keep
    if keep is None:
        return
    if mixer is not None:
        raise RecipeError(
            f"{where}: [keep] mixes on its own; it cannot follow a mixing [[augment]] "
            f"({mixer.name})"
        )
    if keep.method == "paste" and not recipe.data.auto_augment:
        raise RecipeError(
            f"{where}: `keep.method`='paste' pastes back into an auto-augmented image; "
            f"set `data.auto_augment` (one of {', '.join(AUTO_AUGMENT)})"
        )
    if keep.method in ("cutout", "paste") and keep.length > size:
        raise RecipeError(
            f"{where}: `keep.length` must be in [1, {size}] (`data.image_size`), got {keep.length}"
        )


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


__all__ = [
    "DataSection",
    "KeepSection",
    "LossSection",
    "ModelSection",
    "OptimSection",
    "Recipe",
    "RecipeError",
    "ScheduleSection",
    "available_recipes",
    "load_recipe",
    "parse_value",
]
