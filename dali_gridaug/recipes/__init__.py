"""Training recipes: paper settings as TOML files, validated by one pydantic schema.

A recipe is data, not code. The ready pipelines are the TOML files of the repository's
``pipelines/`` folder, installed as ``dali_gridaug/pipelines/``; ``--recipe NAME`` loads one
by name, ``--recipe path/to/file.toml`` any file. Tables (every key optional, except that
``[data]`` must be present)::

    description = "one line"
    [model]      name (a torchvision classification model), cifar_stem, zero_init_residual
    [optim]      lr, momentum, nesterov, weight_decay, no_wd_bn_bias
    [schedule]   name ("step" | "cosine"), epochs, warmup_epochs, milestones, gamma, min_lr
    [data]       batch_size (global), val_batch_size, workers, then loader options:
                 image_size, mean, std, preset, color_jitter, lighting, interpolation,
                 invariant_crop, auto_augment, hflip, vflip, hw_decoder_load, drop_last,
                 aug_repeats (LoaderConfig's fields; the preset's size, mean, std unless set)
    [[augment]]  name = a key of dali_gridaug.AUGMENTATIONS, then that config's arguments
    [loss]       name ("auto" | "ce" | "soft_ce" | "gridmix"), gamma, label_smoothing
    [keep]       method, tau, length, saliency, alpha, draws, box, early_weight
    [keep.gridmask]  r, d, rotate, mode: KeepGridMask's GridMask (dali_gridaug.GridMask)

The schema (:mod:`~dali_gridaug.recipes.sections`) holds types and the recipe's own ranges;
what the library already checks is checked by constructing the library's objects
(:mod:`~dali_gridaug.recipes.checks`): each ``[[augment]]`` entry builds its augmentation
config, ``[keep.gridmask]`` builds a :class:`~dali_gridaug.augment.GridMask` the same way,
``[data]``'s loader options build a :class:`~dali_gridaug.config.LoaderConfig`, ``[keep]`` builds
a :class:`~dali_gridaug.saliency.KeepStage` (on a stand-in model) and ``[model] name`` is looked
up in torchvision's model registry. :meth:`Recipe.loader_config` and :meth:`Recipe.keep_kwargs`
are the one mapping from a recipe to ``create_loader`` and ``KeepStage`` arguments;
:func:`build_model` and :func:`build_criterion` (:mod:`~dali_gridaug.recipes.build`) its model
and loss. A wrong key or value fails at load time, before any loader is built, naming the
file, table and key:
``recipe demo.toml: [optim] unknown key 'lrr'`` or
``recipe demo.toml: `augment[0].r` must be in (0, 1), got 1.5``.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass

from dali_gridaug.augment import Augment
from dali_gridaug.config import LoaderConfig
from dali_gridaug.errors import UsageError
from dali_gridaug.recipes.build import build_criterion, build_model
from dali_gridaug.recipes.checks import (
    build_augments,
    check_cross_sections,
    check_keep,
    check_model,
    describe_errors,
    keep_gridmask_table,
)
from dali_gridaug.recipes.sections import (
    SECTIONS,
    DataSection,
    KeepSection,
    LossSection,
    ModelSection,
    OptimSection,
    ScheduleSection,
    Str,
    data_table,
)


class RecipeError(UsageError):
    """A recipe that cannot be loaded; the message names the file, the table and the key."""


@dataclass(frozen=True, config=ConfigDict(extra="forbid", arbitrary_types_allowed=True))
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

    name: Str
    data: Annotated[DataSection, BeforeValidator(data_table)]
    description: Str = ""
    model: ModelSection = ModelSection()
    optim: OptimSection = OptimSection()
    schedule: ScheduleSection = ScheduleSection()
    loss: LossSection = LossSection()
    augment: Annotated[tuple[Augment, ...], BeforeValidator(build_augments)] = ()
    keep: KeepSection | None = None
    path: str = dataclasses.field(default="", compare=False)

    def __post_init__(self) -> None:
        check_model(self)
        check_cross_sections(self)
        if self.keep is not None:
            check_keep(self)

    @property
    def mixer(self) -> Augment | None:
        """The mixing augmentation (CutMix, GridMix, …), if any."""
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

    def loader_config(self, train: bool = True, world_size: int = 1) -> LoaderConfig:
        """The loader options this recipe sets, per rank; the trainer adds the source,
        device, seed and threads.

        Args:
            train: the training loader (augmentations, ``[data]``'s options, label smoothing,
                Keep's clean view) or the validation one
                (:meth:`~dali_gridaug.config.LoaderConfig.evaluation`).
            world_size: ranks sharing the global batch; ``batch_size`` is per rank.

        Raises:
            RecipeError: the global training batch does not split evenly over the ranks.
        """
        d = self.data
        if train and d.batch_size % world_size:
            raise RecipeError(
                f"recipe {self.name}: `data.batch_size`={d.batch_size} is not divisible by "
                f"the {world_size} ranks"
            )
        batch = d.batch_size if train else max(1, (d.val_batch_size or d.batch_size))
        base = dataclasses.replace(
            d.loader(), batch_size=max(1, batch // world_size), num_threads=d.workers
        )
        if not train:
            return base.evaluation()
        keep = self.keep
        return dataclasses.replace(
            base,
            augment=self.augment,
            keep_clean=keep is not None and keep.method == "paste",
            label_smoothing=self.loss.label_smoothing,
        )

    def keep_kwargs(self) -> dict[str, Any] | None:
        """The :class:`~dali_gridaug.saliency.KeepStage` keyword arguments (after the model),
        or ``None`` without ``[keep]``.
        """
        k = self.keep
        if k is None:
            return None
        out: dict[str, Any] = {
            "method": k.method,
            "tau": k.tau,
            "length": k.length,
            "saliency": k.saliency,
            "alpha": k.alpha,
            "draws": k.draws,
        }
        if k.box is not None:
            out["box"] = k.box
        if k.gridmask is not None:
            out["gridmask"] = k.gridmask
        return out

    def override(self, values: Mapping[str, Any]) -> Recipe:
        """A copy with some values replaced, checked as if the file said so.

        Args:
            values: ``{"section.key": value}`` (``"optim.lr"``, ``"keep.gridmask.r"``) or
                ``{"augment[i].key": value}`` (``"augment[0].d"``); ``None`` values are
                ignored (unset command-line flags).
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
            *tables, key = dotted.split(".")
            if not tables or tables[0] not in SECTIONS or not key:
                raise RecipeError(
                    f"recipe {self.name}: cannot override {dotted!r}; use '<section>.<key>' "
                    f"with a section of {', '.join(SECTIONS)}, or 'augment[<i>].<key>'"
                )
            table = raw
            for name in tables:
                table = table.setdefault(name, {})
            table[key] = value
        return _validate(raw, f"{self.name} (overridden)", self.name, self.path)

    def to_dict(self) -> dict[str, Any]:
        """The recipe as TOML-shaped data (lists for tuples, unset keys left out), e.g. to
        store with a run; :meth:`override` and :func:`load_recipe` read it back.
        """
        out: dict[str, Any] = {"description": self.description}
        for key in SECTIONS:
            section = getattr(self, key)
            if section is not None:
                out[key] = _plain(dataclasses.asdict(section))
        out["data"] |= out["data"].pop("options", {})
        if self.keep is not None and self.keep.gridmask is not None:  # Keep's fields only
            out["keep"]["gridmask"] = _plain(keep_gridmask_table(self.keep.gridmask))
        out["augment"] = [{"name": a.name, **_plain(dataclasses.asdict(a))} for a in self.augment]
        return out


_RECIPE = TypeAdapter(Recipe)


def recipe_dir() -> Path:
    """The folder of the ready pipelines: ``dali_gridaug/pipelines`` when installed, the
    repository's ``pipelines/`` in a source checkout.
    """
    installed = importlib.resources.files("dali_gridaug") / "pipelines"
    if installed.is_dir():
        return Path(str(installed))
    return Path(__file__).resolve().parents[2] / "pipelines"


def available_recipes() -> list[str]:
    """Names of the ready pipelines."""
    return sorted(p.stem for p in recipe_dir().glob("*.toml"))


def load_recipe(name_or_path: str | Path) -> Recipe:
    """Load and validate a recipe by name (``"imagenet_gridmask"``) or TOML path.

    Raises:
        RecipeError: unknown name, unreadable TOML, or an invalid key or value (the message
            names the file, the table and the key).
    """
    path = Path(name_or_path)
    if not path.is_file():
        if path.suffix == ".toml" or len(path.parts) > 1:
            raise RecipeError(f"recipe file {str(path)!r} does not exist")
        path = recipe_dir() / f"{name_or_path}.toml"
        if not path.is_file():
            raise RecipeError(
                f"unknown recipe {str(name_or_path)!r}; ready pipelines: "
                f"{', '.join(available_recipes())} (or pass a .toml path)"
            )
    toml = _toml()
    try:
        raw = toml.loads(path.read_text())
    except toml.TOMLDecodeError as e:
        raise RecipeError(f"recipe {path.name}: invalid TOML: {e}") from None
    return _validate(raw, path.name, path.stem, str(path))


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


def _validate(raw: Mapping[str, Any], label: str, name: str, path: str) -> Recipe:
    where = f"recipe {label}"
    for key in ("name", "path"):
        if key in raw:
            raise RecipeError(f"{where}: unknown top-level key {key!r} (the file names it)")
    if "data" not in raw:
        raise RecipeError(f"{where}: missing table [data] (image_size, batch_size, …)")
    try:
        return _RECIPE.validate_python({**raw, "name": name, "path": path})
    except ValidationError as e:
        raise RecipeError(f"{where}: {describe_errors(e, Recipe)}") from None


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in values.items():
        if isinstance(v, dict):
            v = _plain(v)
        if v is not None:
            out[k] = list(v) if isinstance(v, tuple) else v
    return out


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
    "build_criterion",
    "build_model",
    "load_recipe",
    "parse_value",
    "recipe_dir",
]
