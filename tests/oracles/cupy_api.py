"""CuPy's contract as the CuPy-rules stand-in enforces it: the part of CuPy 13's API it
allows, and the errors it raises where real CuPy would fail.

:mod:`tests.oracles.cupy_rules` refuses any ``cupy`` name, ``cupy.ndarray``
attribute or ``cupy.random`` name outside these tables, as real CuPy would refuse a NumPy-only
one. Each table is a subset of what CuPy 13 provides: a refusal may name a real but unlisted
CuPy function, and the fix is to add it here.
"""

from __future__ import annotations

CUPY_FUNCTIONS = frozenset(
    """
    abs absolute add all allclose amax amin any arange arccos arccosh arcsin arcsinh arctan
    arctan2 arctanh argmax argmin argpartition argsort argwhere around array array_equal
    array_split asarray ascontiguousarray asfortranarray asnumpy atleast_1d atleast_2d
    atleast_3d average bincount bitwise_and bitwise_not bitwise_or bitwise_xor broadcast_arrays
    broadcast_to can_cast cbrt ceil choose clip column_stack compress concatenate copy copysign
    cos cosh count_nonzero cross cumprod cumsum deg2rad degrees diag diagonal diff digitize
    divide dot dsplit dstack einsum empty empty_like equal exp exp2 expand_dims expm1 extract
    eye fabs flatnonzero flip fliplr flipud floor floor_divide fmax fmin fmod frexp from_dlpack
    full full_like get_array_module greater greater_equal histogram hsplit hstack hypot
    identity indices inner interp invert isclose isfinite isin isinf isnan ix_ kron ldexp
    left_shift less less_equal linspace log log10 log1p log2 logaddexp logical_and logical_not
    logical_or logical_xor matmul max maximum mean median meshgrid min minimum mod modf
    moveaxis multiply nan_to_num nanargmax nanargmin nancumsum nanmax nanmean nanmin nansum
    ndim negative nextafter nonzero not_equal ones ones_like outer pad partition percentile
    piecewise place power prod put quantile rad2deg radians ravel reciprocal remainder repeat
    reshape result_type right_shift rint roll rollaxis rot90 round searchsorted select shape
    sign signbit sin sinh size sort split sqrt square squeeze stack std subtract sum swapaxes
    take take_along_axis tan tanh tensordot tile trace transpose tri tril triu true_divide trunc
    unique unravel_index var vsplit vstack where zeros zeros_like
    bool_ complex64 complex128 dtype finfo float16 float32 float64 iinfo int8 int16 int32
    int64 intp issubdtype newaxis promote_types uint8 uint16 uint32 uint64 e inf nan pi
    """.split()
)
"""Functions and names of the ``cupy`` module the stand-in allows (a subset of CuPy 13's)."""

NDARRAY_ATTRIBUTES = frozenset(
    """
    T all any argmax argmin argpartition argsort astype base choose clip compress conj copy
    cumprod cumsum data device diagonal dot dtype dump dumps fill flags flatten get imag item
    itemsize max mean min nbytes ndim nonzero partition prod put ravel real repeat reshape
    round set shape size sort squeeze std strides sum swapaxes take tobytes tofile tolist
    trace transpose var view
    """.split()
)
"""Attributes of ``cupy.ndarray`` the stand-in allows (a subset of CuPy 13's)."""

CUPY_RANDOM = frozenset(
    "Generator RandomState beta binomial choice default_rng get_random_state normal "
    "permutation rand randint randn random random_sample seed shuffle standard_normal "
    "uniform".split()
)
"""Names of ``cupy.random`` (a subset of CuPy 13's); only ``RandomState`` is emulated."""

RANDOM_STATE_METHODS = frozenset(
    "beta binomial choice normal permutation rand randn random_sample seed shuffle "
    "standard_normal uniform".split()
)
"""Methods of ``cupy.random.RandomState`` the stand-in emulates (with NumPy's numbers)."""


DATA_DEPENDENT = frozenset("argwhere compress extract flatnonzero nonzero unique".split())
"""Functions whose output shape is a device value: CuPy reads it back (a sync)."""


class CuPyRuleError(Exception):
    """Base of the errors raised where real CuPy (or CuPy on DALI's GPU stage) would fail."""


class ImplicitHostConversion(CuPyRuleError, TypeError):
    """``numpy.asarray`` (or any implicit conversion to a NumPy array) of a device array."""


class DeviceSynchronized(CuPyRuleError, RuntimeError):
    """A host read of device data (``int()``, ``.item()``, ``.get()``...), which waits for the
    device; CuPy raises ``cupyx.DeviceSynchronized`` under ``allow_synchronize(False)``.
    """


class HostArrayInDeviceOp(CuPyRuleError, TypeError):
    """A ``numpy.ndarray`` operand of a device function, ufunc or operator."""


class MissingCuPyAPI(CuPyRuleError, AttributeError):
    """A function or attribute that NumPy has and CuPy does not."""


__all__ = [
    "CUPY_FUNCTIONS",
    "CUPY_RANDOM",
    "DATA_DEPENDENT",
    "NDARRAY_ATTRIBUTES",
    "RANDOM_STATE_METHODS",
    "CuPyRuleError",
    "DeviceSynchronized",
    "HostArrayInDeviceOp",
    "ImplicitHostConversion",
    "MissingCuPyAPI",
]
