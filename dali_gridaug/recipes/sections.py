"""The recipe tables as frozen pydantic dataclasses: types, defaults and the recipe's own
ranges. What the library checks itself is checked by :mod:`dali_gridaug.recipes.checks`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, Strict
from pydantic.dataclasses import dataclass

from dali_gridaug.augment import GridMask
from dali_gridaug.config import LoaderConfig
from dali_gridaug.presets import ColorJitter
from dali_gridaug.recipes.checks import build_keep_gridmask, named
from dali_gridaug.saliency.keep import METHODS, SALIENCY_KINDS


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]
Bool = Annotated[bool, Strict()]
Str = Annotated[str, Strict()]
_SECTION = ConfigDict(extra="forbid")


@dataclass(frozen=True, config=_SECTION)
class ModelSection:
    """``[model]``: ``name`` a torchvision classification builder (``resnet18``, …);
    ``cifar_stem`` replaces a ResNet's 7×7/2 stem and max-pool by a 3×3/1 convolution (the
    usual ResNet for 32×32 CIFAR images); ``zero_init_residual`` is torchvision's zero-γ init
    of each residual branch's last BN.
    """

    name: Str = "resnet50"
    cifar_stem: Bool = False
    zero_init_residual: Bool = False


@dataclass(frozen=True, config=_SECTION)
class OptimSection:
    """``[optim]``: SGD; ``lr`` is the peak rate for the global ``data.batch_size``;
    ``no_wd_bn_bias`` exempts 1-D parameters (BN, biases) from weight decay.
    """

    lr: Annotated[Float, Field(gt=0)] = 0.1
    momentum: Annotated[Float, Field(ge=0, lt=1)] = 0.9
    nesterov: Bool = False
    weight_decay: Annotated[Float, Field(ge=0)] = 1e-4
    no_wd_bn_bias: Bool = False


@dataclass(frozen=True, config=_SECTION)
class ScheduleSection:
    """``[schedule]``: per-step rate, linear warmup (``warmup_epochs``, may be fractional) then
    ``"step"`` (× ``gamma`` at each of the increasing ``milestones``, in epochs; milestones
    past ``epochs`` never fire) or ``"cosine"`` (to ``min_lr`` at the end of ``epochs``).
    """

    name: Literal["step", "cosine"] = "step"
    epochs: Annotated[Int, Field(ge=1)] = 90
    warmup_epochs: Annotated[Float, Field(ge=0)] = 0.0
    milestones: Annotated[tuple[Annotated[Int, Field(ge=1)], ...], BeforeValidator(_tuple)] = (
        30,
        60,
        80,
    )
    gamma: Annotated[Float, Field(gt=0, le=1)] = 0.1
    min_lr: Annotated[Float, Field(ge=0)] = 0.0

    def __post_init__(self) -> None:
        if self.warmup_epochs >= self.epochs:
            raise ValueError(
                f"`schedule.warmup_epochs` must be < `schedule.epochs`={self.epochs}, "
                f"got {self.warmup_epochs}"
            )
        if list(self.milestones) != sorted(set(self.milestones)):
            raise ValueError(
                f"`schedule.milestones` must be strictly increasing, got {list(self.milestones)}"
            )


#: The ``[data]`` keys that are loader options, :class:`~dali_gridaug.config.LoaderConfig`
#: fields checked by constructing it. The rest of its fields come from the trainer (source,
#: device, seed, ranks, threads), from other tables (``[[augment]]``, ``[loss]``'s
#: ``label_smoothing``, ``[keep]``'s clean view) or are not a recipe's (``exclude``,
#: ``num_classes``, ``dtype``).
DATA_OPTIONS = (
    "image_size",
    "mean",
    "std",
    "preset",
    "color_jitter",
    "lighting",
    "interpolation",
    "invariant_crop",
    "auto_augment",
    "hflip",
    "vflip",
    "hw_decoder_load",
    "drop_last",
    "aug_repeats",
)
#: The trainer's loader defaults where they differ from ``create_loader``'s: an exact resume
#: matters more in a long run than the ~6 % of CPU throughput of DALI's own crop draw.
RECIPE_DEFAULTS: dict[str, Any] = {"invariant_crop": True}
#: ``[data]``'s own keys (the rest are :data:`DATA_OPTIONS`)
DATA_OWN = ("batch_size", "val_batch_size", "workers")


def data_table(raw: Any) -> Any:
    """A flat ``[data]`` table as :class:`DataSection`'s fields: its own keys, and the loader
    options under ``options``.
    """
    if not isinstance(raw, Mapping) or "options" in raw:
        return raw
    options = {k: v for k, v in raw.items() if k not in DATA_OWN}
    return {**{k: v for k, v in raw.items() if k in DATA_OWN}, "options": options}


@dataclass(frozen=True, config=_SECTION)
class DataSection:
    """``[data]``: the recipe's own keys, then loader options.

    Attributes:
        batch_size: **global** batch size, split evenly over the ranks.
        val_batch_size: global validation batch size (0: ``batch_size``).
        workers: DALI CPU threads per rank; unset: the trainer's default.
        options: the other keys, as written: :data:`DATA_OPTIONS`, the
            :class:`~dali_gridaug.config.LoaderConfig` fields of the same names and meanings
            (``preset``'s size, mean and std unless set; ``color_jitter`` may also be a
            ``[brightness, contrast, saturation]`` list, ``auto_augment = ""`` is none). The
            trainer's defaults differ in :data:`RECIPE_DEFAULTS` only.
    """

    batch_size: Annotated[Int, Field(ge=1)] = 256
    val_batch_size: Annotated[Int, Field(ge=0)] = 0
    workers: Annotated[Int, Field(ge=1)] | None = None
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.options) - set(DATA_OPTIONS))
        if unknown:
            valid = ", ".join((*DATA_OWN, *DATA_OPTIONS))
            raise ValueError(f"[data] unknown key {unknown[0]!r}; valid keys: {valid}")
        self.loader()

    def loader(self) -> LoaderConfig:
        """The training loader's options of this table (``batch_size`` the global one).

        Raises:
            ValueError: a bad option, named as ``data.<key>``.
        """
        options = {**RECIPE_DEFAULTS, **self.options}
        for key, value in options.items():
            options[key] = tuple(value) if isinstance(value, list) else value
        if options.get("auto_augment") == "":
            options["auto_augment"] = None
        try:
            if isinstance(options.get("color_jitter"), tuple):
                options["color_jitter"] = ColorJitter(*options["color_jitter"])
            return LoaderConfig(batch_size=self.batch_size, **options)
        except (TypeError, ValueError) as e:
            raise ValueError(named("data", e)) from None


@dataclass(frozen=True, config=_SECTION)
class LossSection:
    """``[loss]``: ``name`` ``"auto"`` (CE for hard targets, soft-target CE when the target is
    a ``(B, K)`` distribution, GridMix's loss with a GridMix augmentation), ``"ce"``,
    ``"soft_ce"`` or ``"gridmix"``; ``gamma`` GridMix's local-loss weight γ;
    ``label_smoothing`` ε, applied by the loader to every target (hard and mixed alike).
    """

    name: Literal["auto", "ce", "soft_ce", "gridmix"] = "auto"
    gamma: Annotated[Float, Field(ge=0)] = 0.15
    label_smoothing: Annotated[Float, Field(ge=0, lt=1)] = 0.0


@dataclass(frozen=True, config=ConfigDict(extra="forbid", arbitrary_types_allowed=True))
class KeepSection:
    """``[keep]``: the post-loader KeepAugment stage (:class:`dali_gridaug.saliency.KeepStage`).

    ``method``, ``tau``, ``length``, ``saliency``, ``alpha``, ``draws`` and ``box`` are the
    stage's arguments (``box`` unset: the stage's default); ``gridmask`` the
    ``[keep.gridmask]`` table, built as the GridMask augmentation's config
    (:class:`~dali_gridaug.augment.GridMask`: keys ``r``, ``d``, ``rotate``, ``mode``, unset
    keys GridMask's defaults; no table: the stage's default, scaled to the image; method
    ``"gridmask"`` only); ``early_weight`` the early head's auxiliary
    loss weight (saliency ``"early"`` only).
    """

    method: Literal[METHODS] = "cutout"  # type: ignore[valid-type]
    tau: Float = 0.6
    length: Int = 16
    saliency: Literal[SALIENCY_KINDS] = "full"  # type: ignore[valid-type]
    alpha: Float = 1.0
    draws: Int = 8
    box: Literal["clip", "inside"] | None = None
    gridmask: Annotated[GridMask | None, BeforeValidator(build_keep_gridmask)] = None
    early_weight: Annotated[Float, Field(ge=0)] = 0.3


SECTIONS = ("model", "optim", "schedule", "data", "loss", "keep")
