"""Recipe checks that the schema's types cannot express, and the error messages.

The rules live with the library objects a recipe builds: an ``[[augment]]`` entry is checked by
constructing its augmentation config (``AUGMENTATIONS[name](**entry)``) and its
``check_geometry``; ``[keep.gridmask]`` by constructing a
:class:`~dali_gridaug.augment.GridMask`; ``[keep]`` by constructing a
:class:`~dali_gridaug.saliency.KeepStage` on a stand-in model; ``[model] name`` against
torchvision's model registry. Errors are rewritten to name the recipe's table and key
(``augment[0].r``, ``keep.tau``) and raised as ``ValueError``, which pydantic reports at the
failing location.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from collections.abc import Mapping
from typing import Any

import annotated_types
from pydantic import ValidationError

from dali_gridaug.augment import AUGMENTATIONS, Augment, GridMask
from dali_gridaug.loader_args import target_smoothing
from dali_gridaug.policies import POLICIES
from dali_gridaug.saliency.grid import GRIDMASK_FIELDS

#: ``data.auto_augment``'s policy names (:data:`dali_gridaug.policies.POLICIES`).
AUTO_AUGMENT = tuple(POLICIES)


def named(label: str, error: Exception) -> str:
    """``"`r` must be …"`` → ``"`augment[0].r` must be …"`` (prefix the first backticked name)."""
    message = re.sub(r"`([^`]+)`", rf"`{label}.\1`", str(error), count=1)
    return message if message != str(error) else f"{label}: {message}"


def build_augments(entries: Any) -> tuple[Augment, ...]:
    """The ``[[augment]]`` tables as augmentation configs, checked by their constructors."""
    if isinstance(entries, tuple) and all(isinstance(e, Augment) for e in entries):
        return entries
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
        raise ValueError("`augment` must be an array of tables ([[augment]])")
    out = []
    for i, entry in enumerate(entries):
        label, kind = f"augment[{i}]", entry.get("name")
        if kind not in AUGMENTATIONS:
            raise ValueError(
                f"`{label}.name` must be one of {', '.join(map(repr, AUGMENTATIONS))}; got {kind!r}"
            )
        cls = AUGMENTATIONS[kind]
        fields = {f.name for f in dataclasses.fields(cls) if f.init}
        kwargs = {}
        for key, value in entry.items():
            if key == "name":
                continue
            if key not in fields:
                raise ValueError(
                    f"[[augment]] {i} ({kind}) unknown key {key!r}; "
                    f"valid keys: {', '.join(sorted(fields))}"
                )
            kwargs[key] = tuple(value) if isinstance(value, list) else value
        try:
            out.append(cls(**kwargs))
        except (TypeError, ValueError) as e:
            raise ValueError(named(label, e)) from None
    return tuple(out)


def build_keep_gridmask(table: Any) -> GridMask | None:
    """The ``[keep.gridmask]`` table as the GridMask augmentation's config, checked by its
    constructor: keys :data:`~dali_gridaug.saliency.grid.GRIDMASK_FIELDS` (``r``, ``d``,
    ``rotate``, ``mode``), unset keys GridMask's defaults.
    """
    if table is None or isinstance(table, GridMask):
        return table
    if not isinstance(table, Mapping):
        raise ValueError(f"[keep.gridmask] must be a table, got {table!r}")
    for key in table:
        if key not in GRIDMASK_FIELDS:
            raise ValueError(
                f"[keep.gridmask] unknown key {key!r}; valid keys: {', '.join(GRIDMASK_FIELDS)}"
            )
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in table.items()}
    try:
        return GridMask(**kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(named("keep.gridmask", e)) from None


def keep_gridmask_table(gridmask: GridMask) -> dict[str, Any]:
    """The ``[keep.gridmask]`` table of a GridMask (the inverse of :func:`build_keep_gridmask`)."""
    return {key: getattr(gridmask, key) for key in GRIDMASK_FIELDS}


def check_model(recipe: Any) -> None:
    """``[model]``: a torchvision classification model; ``cifar_stem``, the GridMix head and
    the early head need a ResNet.
    """
    import torchvision

    name = recipe.model.name
    known = torchvision.models.list_models(module=torchvision.models)
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"`model.name` must be a torchvision classification model "
            f"(torchvision.models.list_models()), got {name!r}{hint}"
        )
    builder = torchvision.models.get_model_builder(name)
    returns = typing.get_type_hints(builder).get("return")
    resnet = isinstance(returns, type) and issubclass(returns, torchvision.models.ResNet)
    needs = [
        ("`model.cifar_stem`", recipe.model.cifar_stem),
        ("the GridMix loss's local head", recipe.loss_kind == "gridmix"),
        ("`keep.saliency`='early'", recipe.keep is not None and recipe.keep.saliency == "early"),
    ]
    for what, used in needs:
        if used and not resnet:
            raise ValueError(f"{what} needs a ResNet `model.name`, got {name!r}")


def check_cross_sections(recipe: Any) -> None:
    """Rules that involve more than one table."""
    (height, width), batch = recipe.data.loader().final_preset().size, recipe.data.batch_size
    for i, aug in enumerate(recipe.augment):
        try:
            aug.check_geometry(height, width, batch)
        except ValueError as e:
            raise ValueError(f"augment[{i}]: {e}") from None
    mixing = [i for i, a in enumerate(recipe.augment) if a.mixing]
    if len(mixing) > 1 or (mixing and mixing[0] != len(recipe.augment) - 1):
        raise ValueError("at most one mixing augmentation (cutmix/gridmix), last")
    mixer, loss = recipe.mixer, recipe.loss.name
    if loss == "gridmix" and (mixer is None or mixer.name != "gridmix"):
        raise ValueError("`loss.name`='gridmix' needs a gridmix [[augment]]")
    if loss == "ce" and (mixer is not None or recipe.keep is not None):
        raise ValueError(
            "`loss.name`='ce' takes hard labels, but this recipe mixes labels "
            "(use 'auto' or 'soft_ce')"
        )
    try:  # the loader's one rule
        target_smoothing(recipe.loss.label_smoothing, recipe.augment)
    except ValueError as e:
        raise ValueError(f"[loss] and [[augment]]: {named('loss', e)}") from None
    if recipe.keep is not None and mixer is not None:
        raise ValueError(
            f"[keep] mixes on its own; it cannot follow a mixing [[augment]] ({mixer.name})"
        )


def _stand_in_model() -> Any:
    """What KeepStage asks of a model at construction: a module with ``early_logits``."""
    from torch import nn

    class StandIn(nn.Module):
        def early_logits(self, x: Any) -> Any:
            return x

    return StandIn()


def check_keep(recipe: Any) -> None:
    """``[keep]``: the arguments build a KeepStage; the window fits the image; no key unused."""
    from dali_gridaug.saliency import KeepStage

    keep, loader = recipe.keep, recipe.data.loader()
    size = min(loader.final_preset().size)
    if keep.method == "paste" and loader.auto_augment is None:
        raise ValueError(
            "`keep.method`='paste' pastes back into an auto-augmented image; "
            f"set `data.auto_augment` (one of {', '.join(AUTO_AUGMENT)})"
        )
    if keep.method in ("cutout", "paste") and keep.length > size:
        raise ValueError(
            f"`keep.length` must be in [1, {size}] (`data.image_size`), got {keep.length}"
        )
    if keep.gridmask is not None and keep.method != "gridmask":
        raise ValueError(f"[keep.gridmask] is used by `keep.method`='gridmask' only, got {keep}")
    try:
        KeepStage(_stand_in_model(), **recipe.keep_kwargs())
    except (TypeError, ValueError) as e:
        raise ValueError(named("keep", e)) from None


def describe_errors(error: ValidationError, root: type) -> str:
    """One line per pydantic error, naming the table and key (``[optim] unknown key 'lrr'``,
    ```optim.lr` must be in (0, inf), got -1``).
    """
    return "; ".join(_describe(e, root) for e in error.errors())


_TYPES = {"int_type": "int", "float_type": "float", "bool_type": "bool", "string_type": "str"}
_BOUNDS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")


def _describe(e: Mapping[str, Any], root: type) -> str:
    loc = [p for p in e["loc"] if p not in ("function-before[_tuple(), tuple[...]]",)]
    keys = [str(p) for p in loc if isinstance(p, str)]
    dotted = ".".join(keys) + "".join(f"[{p}]" for p in loc if isinstance(p, int))
    value, kind = e.get("input"), e["type"]
    if kind == "value_error":
        return str(e["ctx"]["error"])  # the check names the table and key itself
    if kind == "unexpected_keyword_argument":
        owner = _field_type(root, keys[:-1])
        if not keys[:-1]:
            valid = ", ".join(f.name for f in dataclasses.fields(owner) if f.name != "path")
            return f"unknown top-level key {keys[-1]!r}; valid: {valid}"
        valid = ", ".join(f.name for f in dataclasses.fields(owner))
        return f"[{'.'.join(keys[:-1])}] unknown key {keys[-1]!r}; valid keys: {valid}"
    if kind == "missing" and loc and isinstance(loc[-1], int):  # a tuple too short
        name = ".".join(keys)
        return f"`{name}` must list {loc[-1] + 1} or more values, got {list(value)!r}"
    if kind == "missing":
        return f"missing `{dotted}`"
    if kind in ("too_long", "too_short"):
        return f"`{dotted}` must list {_length(e['ctx'])} values, got {list(value)!r}"
    if kind == "tuple_type":
        return f"`{dotted}` must be a list, got {value!r}"
    if kind in _TYPES:
        return f"`{dotted}` must be {_TYPES[kind]}, got {value!r} ({type(value).__name__})"
    if kind == "literal_error":
        return f"`{dotted}` must be one of {e['ctx']['expected']}; got {value!r}"
    if kind in _BOUNDS:
        return f"`{dotted}` must be in {_interval(root, keys)}, got {value!r}"
    if kind.startswith("dataclass") and not isinstance(value, Mapping):
        return f"[{dotted}] must be a table, got {value!r}"
    return f"`{dotted}`: {e['msg']}, got {value!r}"


def _length(ctx: Mapping[str, Any]) -> str:
    return str(ctx.get("max_length") or ctx.get("min_length"))


def _field_type(root: type, keys: list[str]) -> Any:
    """The (dataclass) type at ``keys`` below ``root``, through ``X | None``."""
    owner = root
    for key in keys:
        hint = typing.get_type_hints(owner, include_extras=True)[key]
        owner = next(
            (a for a in _flatten(hint) if dataclasses.is_dataclass(a)), typing.get_origin(hint)
        )
    return owner


def _flatten(hint: Any) -> list[Any]:
    args = typing.get_args(hint)
    return [hint] if not args else [a for arg in args for a in _flatten(arg)] + [hint]


def _interval(root: type, keys: list[str]) -> str:
    """``[0, 1)`` from the field's ``Field(ge=…, lt=…)`` constraints."""
    owner = _field_type(root, keys[:-1])
    fields = getattr(owner, "__pydantic_fields__", {})
    info = fields.get(keys[-1])
    metadata = list(info.metadata) if info is not None else []
    for item in _flatten(info.annotation) if info is not None else []:
        metadata += list(getattr(item, "metadata", None) or [item])  # FieldInfo or a bound
    low, high, left, right = "-inf", "inf", "(", ")"
    for m in metadata:
        if isinstance(m, annotated_types.Gt):
            low, left = repr(m.gt), "("
        elif isinstance(m, annotated_types.Ge):
            low, left = repr(m.ge), "["
        elif isinstance(m, annotated_types.Lt):
            high, right = repr(m.lt), ")"
        elif isinstance(m, annotated_types.Le):
            high, right = repr(m.le), "]"
    return f"{left}{low}, {high}{right}"
