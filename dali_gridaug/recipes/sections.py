"""The recipe tables as frozen pydantic dataclasses: types, defaults and the recipe's own
ranges. What the library checks itself is checked by :mod:`dali_gridaug.recipes.checks`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, Strict
from pydantic.dataclasses import dataclass

from dali_gridaug.augment import GridMask
from dali_gridaug.constants import IMAGENET_MEAN, IMAGENET_STD
from dali_gridaug.recipes.checks import AUTO_AUGMENT, build_keep_gridmask
from dali_gridaug.saliency.keep import METHODS, SALIENCY_KINDS


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]
Bool = Annotated[bool, Strict()]
Str = Annotated[str, Strict()]
Pixel = Annotated[float, Strict(), Field(ge=0, le=255)]
Channels = Annotated[tuple[Pixel, Pixel, Pixel], BeforeValidator(_tuple)]
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


@dataclass(frozen=True, config=_SECTION)
class DataSection:
    """``[data]``.

    Attributes:
        image_size: training crop and validation crop side in pixels.
        batch_size: **global** batch size, split evenly over the ranks.
        val_batch_size: global validation batch size (0: ``batch_size``).
        mean: per-channel mean in 0–255 pixel units (ImageNet's unless set, whatever the
            preset: a CIFAR recipe sets CIFAR's).
        std: per-channel std in 0–255 pixel units (likewise).
        auto_augment: DALI ``auto_aug`` policy applied before normalization ("": none).
        preset: the loader's pipeline preset (``"imagenet"``, ``"cifar"``); unset: the
            loader's default (ImageNet).
        color_jitter: torchvision ``ColorJitter`` strength, one number for brightness,
            contrast and saturation alike or a ``[brightness, contrast, saturation]`` list;
            unset: the preset's (none).
        lighting: std of AlexNet's PCA lighting noise; unset: the preset's (none).
        workers: DALI CPU threads per rank; unset: the trainer's default.
        invariant_crop: the preset's ``invariant_crop``, on by default for the trainer
            (unlike ``create_loader``): the random-resized crop window is drawn on the host,
            keyed by global position, so a resumed or resized run sees the crops an
            uninterrupted one does; false: DALI's own draw, about 6 % faster on DALI's CPU
            backend, rank-dependent.
    """

    image_size: Annotated[Int, Field(ge=8)] = 224
    batch_size: Annotated[Int, Field(ge=1)] = 256
    val_batch_size: Annotated[Int, Field(ge=0)] = 0
    mean: Channels = IMAGENET_MEAN
    std: Channels = IMAGENET_STD
    auto_augment: Literal[("", *AUTO_AUGMENT)] = ""  # type: ignore[valid-type]
    preset: Str | None = None
    color_jitter: Float | Annotated[tuple[Float, Float, Float], BeforeValidator(_tuple)] | None = (
        None
    )
    lighting: Annotated[Float, Field(gt=0)] | None = None
    workers: Annotated[Int, Field(ge=1)] | None = None
    invariant_crop: Bool = True


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
