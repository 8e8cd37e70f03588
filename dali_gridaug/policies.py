"""Automatic augmentation policies, run inside the DALI graph (``nvidia.dali.auto_aug``).

A policy is a frozen dataclass, checked at construction, whose :meth:`apply` adds it to a
DALI graph on HWC uint8 images (conditionals on, no ``python_function``, CPU or GPU):

* :class:`RandAugment` — DALI's ``rand_augment``: ``n`` ops per image, each at magnitude bin
  ``m`` of ``num_magnitude_bins``;
* :class:`TrivialAugment` — DALI's ``trivial_augment_wide``: one op, a random bin;
* :class:`AutoAugment` — DALI's ``auto_augment`` with a named DALI policy, or
  ``apply_auto_augment`` with a ``nvidia.dali.auto_aug.core.Policy``.

:data:`POLICIES` is the one table of names (``create_loader(auto_augment="rand_augment")``,
recipes' ``data.auto_augment``, the GPU checks); :func:`resolve` turns a name or a policy into a
policy; :func:`from_timm` parses timm's ``--aa`` strings.

timm's ``--aa`` strings (timm 1.0; :func:`from_timm`)
------------------------------------------------------

Magnitudes: timm's ``m`` is on a 0–10 scale, an op at ``m`` takes ``m/10`` of its range. DALI's
bin ``b`` of ``num_magnitude_bins`` takes ``b/(bins−1)`` of its range, so ``from_timm`` uses
``num_magnitude_bins=11`` and bin ``m``: the same fraction. A non-integer ``m`` (timm itself
parses only integers) with ``d`` ≤ 2 decimals uses ``10·10^d + 1`` bins and bin ``m·10^d``,
again the same fraction. (The name ``"rand_augment"``, ``RandAugment(n=2, m=9)`` with DALI's
31 bins, is 0.3 of each range: timm's ``m3``, not ``m9``.)

=================  =========================================================================
``rand-…`` part    decision
=================  =========================================================================
``m<M>``           bin ``M`` of 11 (see above); timm's default ``M`` is 10.
``n<N>``           ``n=N`` (default 2).
``mmax<X>``        timm clamps the magnitude to ``[0, X]`` (default 10): ``M`` is clamped the
                   same way; a clamped ``M`` above 10 is refused (timm extrapolates the op
                   ranges past their end, DALI's ranges end at bin ``bins−1``).
``inc<0|1>``       ``monotonic_mag`` (timm's default ``inc0`` → False). Equal for rotate, shear,
                   translate, solarize and the enhance ops (inc1: ``1 ± 0.9·M/10``, random
                   sign; inc0: ``0.1 + 1.8·M/10``). They differ for posterize: timm inc1 keeps
                   ``4 − ⌊4M/10⌋`` bits (4 → 0), DALI's monotonic suite keeps 8 → 4 bits; and
                   DALI never keeps 0 bits (it keeps 1, timm's ``inc0 m0`` blanks the image).
``mstd<S>``        magnitude noise (``N(M, S)`` per op; ``S`` > 100: uniform in ``[0, M]``):
                   DALI has none; warns, uses the fixed ``M`` (``mstd0`` is silent).
``p<P>``           timm applies each chosen op with probability ``P`` (default 0.5); DALI's
                   ``rand_augment`` applies every chosen op (its suite's ``identity`` makes
                   1/14 of the draws no-ops). Any explicit ``p`` warns and is ignored.
``w<I>``           old timm's op weights (timm 1.0 rejects ``w``): refused, DALI's
                   ``rand_augment`` picks its ops uniformly.
``tweights``,      weighted op sets: refused (uniform choice only).
``t3aw``
``t3a``            refused: its Desaturate and GaussianBlur have no DALI op.
other ``t…``,      refused as malformed (timm silently ignores them).
other parts
=================  =========================================================================

Op sets: timm's RandAugment draws from AutoContrast, Equalize, Invert, Rotate, Posterize,
Solarize, SolarizeAdd, Color, Contrast, Brightness, Sharpness, ShearX, ShearY, TranslateXRel,
TranslateYRel (15; inc1: the ``…Increasing`` variants of Posterize, Solarize and the enhance
ops). DALI's suite is auto_contrast, equalize, rotate, posterize, solarize, color, contrast,
brightness, sharpness, shear_x, shear_y, translate_x, translate_y and identity (14): timm's
Invert and SolarizeAdd are missing, DALI's identity is extra. Translations: DALI shifts up to
100 px (timm: 0.45 of the image side; equal at 224 px) unless ``apply`` gets ``shape``.

AutoAugment (``original``, ``originalr``, ``v0``, ``v0r``; optional ``-mstd<S>``, which warns as
above): none is DALI's ``image_net`` policy (``v0`` has its sub-policies, but DALI maps them
with other ranges: 250 px translations, rounded posterize bits), so ``from_timm`` builds a
``Policy`` at run time from timm's own sub-policies (``timm.data.auto_augment``, imported
then; timm is needed only for this), 11 bins, with timm's magnitude → parameter tables for
posterize, solarize, solarize-add and the non-increasing enhance ops, and the shared ranges
above for rotate/shear/increasing enhance; translations (``v0``, ``v0r``) shift up to
100 px whatever ``shape`` (timm: 0.45 of the side; equal at 224 px). timm's ops of
probability 0 are left out (DALI warns on them; they never run). ``3a`` is refused
(Desaturate, GaussianBlurRand).

TrivialAugment: timm 1.0 has no TrivialAugment; ``trivialaugment`` and ``ta_wide`` are accepted
as :class:`TrivialAugment` (torchvision's TrivialAugmentWide, which DALI's implements).
``augmix…``: refused, AugMix has no DALI equivalent.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
import types
import warnings
from collections.abc import Mapping
from typing import Any

from dali_gridaug._validate import check_int, check_type
from dali_gridaug.errors import UsageError

#: DALI's named AutoAugment policies (``nvidia.dali.auto_aug.auto_augment.auto_augment``).
DALI_AUTO_AUGMENT_POLICIES = ("image_net", "reduced_image_net", "svhn", "reduced_cifar10")
#: The op names of DALI's RandAugment and TrivialAugment suites (``excluded`` takes these).
DALI_SUITE_OPS = (
    "translate_x",
    "translate_y",
    "shear_x",
    "shear_y",
    "rotate",
    "brightness",
    "contrast",
    "color",
    "sharpness",
    "posterize",
    "solarize",
    "equalize",
    "auto_contrast",
    "identity",
)


def _excluded(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (tuple, list)):
        raise TypeError(f"`excluded` must be a sequence of op names, got {value!r}")
    for name in value:
        if name not in DALI_SUITE_OPS:
            raise ValueError(
                f"`excluded` items must be ops of DALI's suite ({', '.join(DALI_SUITE_OPS)}); "
                f"got {name!r}"
            )
    if len(set(value)) >= len(DALI_SUITE_OPS):
        raise ValueError(f"`excluded` must leave at least one op, got {tuple(value)!r}")
    return tuple(value)


def _kwargs(shape: Any, seed: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {"seed": seed}
    if shape is not None:
        out["shape"] = shape
    return out


@dataclasses.dataclass(frozen=True)
class RandAugment:
    """DALI's RandAugment: ``n`` ops per image, each at magnitude bin ``m``.

    Args:
        n: ops per image, ≥ 1.
        m: magnitude bin in ``[0, num_magnitude_bins − 1]``.
        num_magnitude_bins: bins the op ranges are divided into, ≥ 2.
        monotonic_mag: DALI's flavour whose strength grows with ``m`` (timm's ``inc1``).
        excluded: op names of :data:`DALI_SUITE_OPS` to leave out.
    """

    n: int = 2
    m: int = 9
    num_magnitude_bins: int = 31
    monotonic_mag: bool = True
    excluded: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_int("n", self.n, 1)
        bins = check_int("num_magnitude_bins", self.num_magnitude_bins, 2)
        check_int("m", self.m, 0, bins - 1)
        check_type("monotonic_mag", self.monotonic_mag, bool)
        object.__setattr__(self, "excluded", _excluded(self.excluded))

    def apply(self, images: Any, *, shape: Any = None, seed: int | None = None) -> Any:
        """RandAugment on HWC uint8 ``images`` (a DALI node); ``shape`` (H, W) makes the
        translations relative to the image (else up to 100 px).
        """
        from nvidia.dali.auto_aug import rand_augment

        return rand_augment.rand_augment(
            images,
            n=int(self.n),
            m=int(self.m),
            num_magnitude_bins=int(self.num_magnitude_bins),
            monotonic_mag=self.monotonic_mag,
            excluded=list(self.excluded) or None,
            **_kwargs(shape, seed),
        )


@dataclasses.dataclass(frozen=True)
class TrivialAugment:
    """DALI's TrivialAugment Wide: one op per image at a uniformly random bin.

    Args:
        num_magnitude_bins: bins the op ranges are divided into, ≥ 2.
        excluded: op names of :data:`DALI_SUITE_OPS` to leave out.
    """

    num_magnitude_bins: int = 31
    excluded: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_int("num_magnitude_bins", self.num_magnitude_bins, 2)
        object.__setattr__(self, "excluded", _excluded(self.excluded))

    def apply(self, images: Any, *, shape: Any = None, seed: int | None = None) -> Any:
        """TrivialAugment Wide on HWC uint8 ``images`` (a DALI node)."""
        from nvidia.dali.auto_aug import trivial_augment

        return trivial_augment.trivial_augment_wide(
            images,
            num_magnitude_bins=int(self.num_magnitude_bins),
            excluded=list(self.excluded) or None,
            **_kwargs(shape, seed),
        )


@dataclasses.dataclass(frozen=True)
class AutoAugment:
    """AutoAugment with a DALI policy: a name of :data:`DALI_AUTO_AUGMENT_POLICIES` or a
    ``nvidia.dali.auto_aug.core.Policy`` (e.g. one :func:`from_timm` built).
    """

    policy: Any = "image_net"

    def __post_init__(self) -> None:
        if isinstance(self.policy, str):
            if self.policy not in DALI_AUTO_AUGMENT_POLICIES:
                raise ValueError(
                    f"`policy` must be one of {', '.join(map(repr, DALI_AUTO_AUGMENT_POLICIES))} "
                    f"or a nvidia.dali.auto_aug.core.Policy; got {self.policy!r}"
                )
            return
        from nvidia.dali.auto_aug.core import Policy

        if not isinstance(self.policy, Policy):
            raise TypeError(
                "`policy` must be a DALI policy name or a nvidia.dali.auto_aug.core.Policy, "
                f"got {self.policy!r} ({type(self.policy).__name__})"
            )

    def apply(self, images: Any, *, shape: Any = None, seed: int | None = None) -> Any:
        """AutoAugment on HWC uint8 ``images`` (a DALI node); ``shape`` is passed on to the
        policy's ops that take one (a named policy's translations; unused otherwise).
        """
        from nvidia.dali.auto_aug import auto_augment

        if isinstance(self.policy, str):
            return auto_augment.auto_augment(images, self.policy, **_kwargs(shape, seed))
        augs = self.policy.augmentations.values()
        takes_shape = any("shape" in inspect.signature(aug.op).parameters for aug in augs)
        return auto_augment.apply_auto_augment(
            self.policy, images, **_kwargs(shape if takes_shape else None, seed)
        )


#: A policy object.
AugmentPolicy = RandAugment | TrivialAugment | AutoAugment

#: The policy names ``auto_augment=`` accepts (recipes, GPU checks), with what each runs.
POLICIES: Mapping[str, AugmentPolicy] = types.MappingProxyType(
    {
        "rand_augment": RandAugment(n=2, m=9),
        "auto_augment": AutoAugment("image_net"),
        "trivial_augment": TrivialAugment(),
    }
)


def resolve(value: Any, name: str = "auto_augment") -> AugmentPolicy:
    """``value`` as a policy: a name of :data:`POLICIES` or a policy object."""
    if isinstance(value, (RandAugment, TrivialAugment, AutoAugment)):
        return value
    if isinstance(value, str) and value in POLICIES:
        return POLICIES[value]
    raise ValueError(
        f"`{name}` must be one of {', '.join(map(repr, POLICIES))} or a policy of "
        f"dali_gridaug.policies (e.g. policies.from_timm('rand-m9-mstd0.5-inc1')); got {value!r}"
    )


# --- timm's --aa strings -----------------------------------------------------------------

_PART = re.compile(r"^([a-z]+)(\d.*)$")
_TIMM_AA = ("original", "originalr", "v0", "v0r", "3a")


def _warn(option: str, difference: str, stacklevel: int = 3) -> None:
    """Warn at from_timm's caller (``stacklevel`` counts the frames from here)."""
    warnings.warn(f"timm --aa option `{option}`: {difference}", UserWarning, stacklevel=stacklevel)


def _number(aa: str, part: str, value: str, integer: bool = False) -> float:
    try:
        number = int(value) if integer else float(value)
    except ValueError:
        raise UsageError(f"timm --aa {aa!r}: bad part {part!r} (not a number)") from None
    if not math.isfinite(number) or number < 0:
        raise UsageError(f"timm --aa {aa!r}: bad part {part!r} (must be a number ≥ 0)")
    return number


def from_timm(aa: str) -> AugmentPolicy:
    """The policy for timm's ``--aa`` string ``aa`` (decisions: the module docstring).

    Raises:
        UsageError: AugMix, an option DALI cannot do (refused in the table), or a malformed
            string (the message names the bad part).
    """
    if not isinstance(aa, str) or not aa:
        raise UsageError(f"timm --aa must be a non-empty string, got {aa!r}")
    head, *parts = aa.split("-")
    if head.startswith("augmix"):
        raise UsageError(f"timm --aa {aa!r}: AugMix has no DALI equivalent")
    if head.startswith("rand"):
        if head != "rand":
            raise UsageError(f"timm --aa {aa!r}: bad part {head!r} (RandAugment is 'rand-…')")
        return _rand(aa, parts)
    if head in ("trivialaugment", "ta_wide"):
        if parts:
            raise UsageError(f"timm --aa {aa!r}: bad part {parts[0]!r} (TrivialAugment has none)")
        return TrivialAugment()
    if head in _TIMM_AA:
        for part in parts:
            match = _PART.match(part)
            if not match or match.group(1) != "mstd":
                raise UsageError(f"timm --aa {aa!r}: bad part {part!r} (AutoAugment takes mstd)")
            if _number(aa, part, match.group(2)) > 0:
                _warn(part, "DALI has no magnitude noise; the policy's fixed magnitudes are used")
        return AutoAugment(_timm_policy(head))
    raise UsageError(
        f"timm --aa {aa!r}: bad part {head!r}; expected rand-…, augmix-…, trivialaugment, "
        f"ta_wide or an AutoAugment policy ({', '.join(_TIMM_AA)})"
    )


def _rand(aa: str, parts: list[str]) -> RandAugment:
    n, m, m_text, mmax, inc = 2, 10.0, "10", None, False
    for part in parts:
        if part in ("tweights", "t3aw"):
            raise UsageError(
                f"timm --aa {aa!r}: `{part}` (weighted op choice) is not supported; "
                "DALI's rand_augment picks its ops uniformly"
            )
        if part == "t3a":
            raise UsageError(
                f"timm --aa {aa!r}: `t3a` is not supported; its Desaturate and GaussianBlur "
                "have no DALI op"
            )
        match = _PART.match(part)
        if not match:
            raise UsageError(f"timm --aa {aa!r}: bad part {part!r}")
        key, value = match.groups()
        if key == "m":
            m, m_text = _number(aa, part, value), value
        elif key == "n":
            n = int(_number(aa, part, value, integer=True))
        elif key == "mmax":
            mmax = _number(aa, part, value)
        elif key == "inc":
            if value not in ("0", "1"):
                raise UsageError(f"timm --aa {aa!r}: bad part {part!r} (inc0 or inc1)")
            inc = value == "1"
        elif key == "mstd":
            if _number(aa, part, value) > 0:
                _warn(part, "DALI has no magnitude noise; every op uses the fixed magnitude m", 4)
        elif key == "p":
            _number(aa, part, value)
            _warn(part, "DALI's RandAugment has no per-op probability; every chosen op applies", 4)
        elif key == "w":
            raise UsageError(
                f"timm --aa {aa!r}: `{part}` (op weights) is not supported; DALI's "
                "rand_augment picks its ops uniformly"
            )
        else:
            raise UsageError(f"timm --aa {aa!r}: bad part {part!r}")
    upper = 10.0 if mmax is None else mmax
    if min(m, upper) > 10:
        raise UsageError(
            f"timm --aa {aa!r}: magnitude {min(m, upper):g} > 10 (allowed by mmax) is not "
            "supported; DALI's op ranges end at timm's magnitude 10"
        )
    if m > upper:  # timm clamps the magnitude to [0, mmax]
        m, m_text = upper, f"{upper:g}"
    decimals = len(m_text.partition(".")[2].rstrip("0"))
    if decimals > 2:
        raise UsageError(f"timm --aa {aa!r}: magnitude {m_text} has more than 2 decimals")
    scale = 10**decimals
    return RandAugment(
        n=n, m=round(m * scale), num_magnitude_bins=10 * scale + 1, monotonic_mag=inc
    )


def _timm_policy(name: str) -> Any:
    """The AutoAugment policy ``name`` of timm as a DALI ``Policy`` (11 bins, timm's magnitudes)."""
    if name == "3a":
        raise UsageError(
            "timm --aa '3a' is not supported; its Desaturate and GaussianBlurRand have no DALI op"
        )
    try:
        from timm.data import auto_augment as timm_aa
    except ImportError as exc:
        raise UsageError(
            f"timm --aa {name!r} builds its policy from timm's own tables: install timm "
            f"(pip install timm; a test dependency of dali-gridaug, not a runtime one): {exc}"
        ) from None
    from nvidia.dali.auto_aug.core import Policy as DaliPolicy

    made: dict[str, Any] = {}
    sub_policies = []
    for sub in timm_aa.auto_augment_policy(name):
        ops = []
        for op in sub:
            if op.prob == 0:
                continue  # never runs; DALI warns on probability 0
            if op.name not in made:
                made[op.name] = _dali_op(op.name, timm_aa)
            aug, takes_magnitude = made[op.name]
            ops.append((aug, float(op.prob), int(op.magnitude) if takes_magnitude else None))
        if ops:
            sub_policies.append(ops)
    return DaliPolicy(name=f"timm_{name}", num_magnitude_bins=11, sub_policies=sub_policies)


def _dali_op(name: str, timm_aa: Any) -> tuple[Any, bool]:
    """DALI's augmentation for timm op ``name``, and whether it takes a magnitude."""
    import numpy as np
    from nvidia.dali.auto_aug import augmentations as a

    def table() -> Any:  # timm's own parameter at each magnitude 0..10
        values = [timm_aa.LEVEL_TO_ARG[name](float(b), {})[0] for b in range(11)]
        return np.array(values, dtype=np.float32)

    plain = {"AutoContrast": a.auto_contrast, "Equalize": a.equalize, "Invert": a.invert}
    if name in plain:
        return plain[name], False
    if name.startswith("Posterize"):
        return a.posterize.augmentation(table(), False, a.poster_mask_uint8), True
    if name.startswith("Solarize") and name != "SolarizeAdd":
        return a.solarize.augmentation(table(), False), True
    if name == "SolarizeAdd":
        return a.solarize_add.augmentation(table(), False), True
    enhance = {
        "Color": a.color,
        "Contrast": a.contrast,
        "Brightness": a.brightness,
        "Sharpness": a.sharpness,
    }
    if name in enhance:
        kernel = a.sharpness_kernel_shifted if name == "Sharpness" else None
        return enhance[name].augmentation(table(), False, kernel), True
    base = name.removesuffix("Increasing")
    if base in enhance:
        kernel = a.sharpness_kernel if base == "Sharpness" else a.shift_enhance_range
        return enhance[base].augmentation((0, 0.9), True, kernel), True
    geometric = {
        "Rotate": a.rotate.augmentation((0, 30), True),
        "ShearX": a.shear_x.augmentation((0, 0.3), True),
        "ShearY": a.shear_y.augmentation((0, 0.3), True),
        "TranslateXRel": a.translate_x_no_shape.augmentation((0, 100), True),
        "TranslateYRel": a.translate_y_no_shape.augmentation((0, 100), True),
    }
    if name in geometric:
        return geometric[name], True
    raise UsageError(f"timm op {name!r} has no DALI augmentation")
