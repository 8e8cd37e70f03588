"""Check the library's GPU DALI graphs on a machine without a GPU.

For each :class:`~dali_gridaug.testing.cases.GraphCase`, :func:`validate` builds the GPU graph
(``device="gpu"``, nvJPEG ``mixed`` decoder, ``device_id=0``) with the library's own
``build_pipeline`` and runs every check DALI can do without CUDA, in order; a graph reaches
level n when checks 1…n pass:

1. graph definition: DALI's Python graph (operator schemas and arguments, input devices,
   named arguments on the CPU) and the library's own geometry checks;
2. placement: every operator placed on ``gpu``/``mixed`` has a kernel for that device in DALI's
   operator registry (DALI itself finds a missing one only when it builds on a GPU), every
   argument input comes from a CPU node, regular inputs are on the device the operator needs,
   the only CPU operators are reading and per-sample parameter ops (no image work on the
   CPU), and every pipeline output is on the GPU (no host copy per batch);
3. backend graph: the C++ pipeline adds every operator (``AddOperator``'s placement rules) with
   the device id withheld, and serializes (only ``python_function`` may refuse);
4. build: ``Build`` stops at DALI's check for a CUDA-capable GPU and nowhere else;
5. CPU twin: the same spec with ``device="cpu"`` runs one batch whose outputs have the
   expected shapes and dtypes; with ``resume``, a pipeline whose feed starts at the second
   batch (a restored loader state) gives the same second batch.

GPU ``python_function`` operators (the ``"kernel"`` backend) import CuPy when defined; where
CuPy is not installed a placeholder module stands in while the graph is defined (the kernels
never run here), and the result notes that the graph needs CuPy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import importlib.util
import os
import sys
import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from dali_gridaug.testing.cases import BATCH, GraphCase, Sources, builder, sample_sources

#: Level number → what it checks.
LEVELS = {
    1: "graph definition",
    2: "placement",
    3: "backend graph",
    4: "build",
    5: "CPU twin",
}
#: The CPU operators a GPU graph may hold: reading, the parameter feed and per-sample
#: parameter arithmetic (a few numbers per sample). Any other CPU operator is image work off
#: the GPU, with a host-to-device copy per batch after it (DALI moves a CPU input of a GPU
#: operator itself, so nothing else notices). A new parameter operator goes here.
CPU_PARAMETER_OPS = frozenset(
    {
        "ExternalSource",
        "io__file__Read",
        "readers__File",
        "PeekImageShape",
        "Cast",
        "Cat",
        "Constant",
        "CoordTransform",
        "Reshape",
        "_ArithmeticGenericOp",
        "_TensorSubscript",
        "_conditional__Split",
        "random__Uniform",
        "reductions__Max",
        "reductions__Min",
        "reductions__Sum",
        "transforms__Shear",
        "transforms__Translation",
    }
)
#: The only message ``Build`` may stop with on a machine without a GPU.
CUDA_CHECK = "requires a CUDA-capable GPU"


@dataclasses.dataclass(frozen=True)
class GraphResult:
    """The outcome of checking one graph.

    Attributes:
        name: the case's name.
        ok: every level passed.
        level: the highest level passed, 0–5 (5 when ``ok``).
        message: empty when ``ok``, else ``"L<n> <level name>: <what failed>"``, naming
            the operator.
        notes: facts worth knowing that are not failures (e.g. the graph needs CuPy).
    """

    name: str
    ok: bool
    level: int
    message: str = ""
    notes: tuple[str, ...] = ()


class CheckFailed(Exception):
    """A level failed: ``level`` and what failed."""

    def __init__(self, level: int, what: str) -> None:
        super().__init__(f"L{level} {LEVELS[level]}: {what}")
        self.level = level


_NOISE = ("Critical error in pipeline:", "Current pipeline object is no longer valid.")


def describe(e: BaseException) -> str:
    """One line for a (DALI) exception: its type, the operator and what it encountered, and
    the last library frame where that operator was defined; DALI's repeated banners, Python
    traceback and C++ context are dropped.
    """
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and ln.strip() not in _NOISE]
    kept, frame, in_trace = [], "", False
    for ln in lines:
        if ln.startswith("which was used in the pipeline definition"):
            in_trace = True
        elif in_trace and ln == "encountered:":
            in_trace = False
        elif in_trace:
            if ln.startswith('File "') and "dali_gridaug" in ln:
                path, _, rest = ln[6:].partition('", line ')
                frame = f"{path[path.rindex('dali_gridaug') :]}:{rest.replace(', in ', ' in ')}"
        elif not ln.startswith("C++ context:"):
            kept.append(ln)
    text = " ".join(kept) + (f" (defined at {frame})" if frame else "")
    return f"{type(e).__name__}: {text}"[:700]


@contextlib.contextmanager
def cupy_placeholder() -> Iterator[bool]:
    """Let DALI define GPU ``python_function`` operators where CuPy is not installed.

    DALI imports CuPy when a GPU ``python_function`` is defined, not only when it runs. Where
    CuPy is missing, a placeholder module named ``cupy`` (every attribute access raises) is
    importable inside this block and removed afterwards. Yields True when it stood in.
    """
    if importlib.util.find_spec("cupy") is not None or "cupy" in sys.modules:
        yield False
        return
    placeholder = types.ModuleType("cupy")

    def missing(attr: str) -> Any:
        # AttributeError, so introspection (getattr with a default, AutoGraph) passes it by
        raise AttributeError(f"cupy.{attr}: CuPy is not installed (placeholder for validation)")

    placeholder.__getattr__ = missing  # type: ignore[attr-defined]
    sys.modules["cupy"] = placeholder
    try:
        yield True
    finally:
        del sys.modules["cupy"]
        from nvidia.dali.ops._operators import python_function

        if python_function.cupy is placeholder:
            python_function.cupy = None


def _supported(schema_name: str) -> list[str]:
    from nvidia.dali import backend

    return list(backend.GetSchema(schema_name).GetSupportedBackends())


def _registered(schema_name: str, device: str) -> bool:
    """A kernel for ``device`` is registered: in DALI's C++ operator registry and, for an
    operator DALI's Python registry knows, there too.
    """
    from nvidia.dali.ops import _registry

    by_device = {"cpu": _registry.cpu_ops, "gpu": _registry.gpu_ops, "mixed": _registry.mixed_ops}
    known = _registry.cpu_ops() | _registry.gpu_ops() | _registry.mixed_ops()
    if schema_name in known and schema_name not in by_device[device]():
        return False
    return device in _supported(schema_name)


def placement_errors(pipe: Any, output_names: list[str] | None = None) -> list[str]:
    """Level 2 on a defined pipeline graph (``pipe._build_graph()`` done).

    Returns:
        One message per problem, each naming the operator (schema and instance name).
    """
    errors = []
    for op in pipe._ops:
        name, dev = op._op.schema.Name(), op._op.device
        where = f"{name} ({op.name})"
        if dev == "cpu" and name not in CPU_PARAMETER_OPS:
            errors.append(
                f"{where} runs on the CPU in a GPU graph: only reading and per-sample "
                "parameter operators belong there (CPU_PARAMETER_OPS)"
            )
        if not _registered(name, dev):
            errors.append(
                f"{where} is placed on '{dev}', but DALI has kernels for it only on "
                f"{_supported(name)}"
            )
        regular = op.spec.NumRegularInput()
        for i, inp in enumerate(op.inputs):
            if i >= regular and inp.device != "cpu":
                errors.append(
                    f"{where}: argument input {inp.name!r} is on '{inp.device}'; "
                    "named arguments must be CPU nodes"
                )
            want = {"mixed": "cpu", "gpu": "gpu"}.get(dev)
            if i < regular and want is not None and inp.device != want:
                errors.append(f"{where}: input {i} is on '{inp.device}', the op needs '{want}'")
    names = output_names or [str(j) for j in range(len(pipe._graph_outputs))]
    for name, out in zip(names, pipe._graph_outputs, strict=False):
        if out.device != "gpu":
            errors.append(
                f"output {name!r} is on '{out.device}': a GPU pipeline's outputs must be on the "
                "GPU (a CPU output costs a host copy per batch)"
            )
    return errors


def has_python_function(pipe: Any) -> bool:
    """True when the built DALI pipeline ``pipe`` holds a ``python_function`` operator (the
    ``"kernel"`` backend), i.e. a graph that is not all DALI ops.
    """
    return any(op._op.schema.Name() == "DLTensorPythonFunctionImpl" for op in pipe._ops)


def check_gpu_graph(define: Callable[[], tuple[Any, list[str]]]) -> tuple[int, list[str]]:
    """Levels 1–4 on the GPU pipeline ``define()`` returns as ``(pipeline, output_names)``.

    Returns:
        ``(4, notes)`` when all four pass.

    Raises:
        CheckFailed: the first level that fails.
    """
    notes: list[str] = []
    with cupy_placeholder() as stood_in:
        try:
            pipe, names = define()
            pipe._build_graph()
        except Exception as e:  # noqa: BLE001 (any refusal is the finding)
            raise CheckFailed(1, describe(e)) from e
    gpu_python = [
        op.name
        for op in pipe._ops
        if op._op.schema.Name() == "DLTensorPythonFunctionImpl" and op._op.device == "gpu"
    ]
    if gpu_python:
        notes.append(
            f"needs CuPy on the GPU: python_function {', '.join(gpu_python)}"
            + (" (defined with a CuPy placeholder)" if stood_in else "")
        )
    errors = placement_errors(pipe, names)
    if errors:
        raise CheckFailed(2, "; ".join(errors))
    try:
        pipe._device_id = None  # the backend constructor then initializes no CUDA
        pipe._init_pipeline_backend()
        pipe._pipe.SetOutputDescs(pipe._generate_build_args())
    except Exception as e:  # noqa: BLE001
        raise CheckFailed(3, describe(e)) from e
    try:
        pipe._pipe.SerializeToProtobuf()
    except Exception as e:  # noqa: BLE001
        if not has_python_function(pipe):
            raise CheckFailed(3, "serialization: " + describe(e)) from e
        notes.append("not serializable (python_function)")
    if gpu_count() > 0:
        _run_on_gpu(define, stood_in, notes)
        return 4, notes
    try:
        pipe._pipe.Build(pipe._generate_build_args())
    except Exception as e:  # noqa: BLE001
        if CUDA_CHECK not in str(e):
            raise CheckFailed(4, describe(e)) from e
    else:
        raise CheckFailed(4, "Build succeeded without a GPU: the graph never asked for one")
    return 4, notes


def gpu_count() -> int:
    """CUDA devices DALI sees (0 on a machine without a GPU or driver)."""
    from nvidia.dali import backend

    try:
        return int(backend.GetCUDADeviceCount())
    except Exception:  # noqa: BLE001 (no driver)
        return 0


def _run_on_gpu(
    define: Callable[[], tuple[Any, list[str]]], stood_in: bool, notes: list[str]
) -> None:
    """Level 4 where a GPU exists: a fresh pipeline builds and runs one batch on device 0
    (not when CuPy is missing and the graph needs it).
    """
    if stood_in and any(n.startswith("needs CuPy") for n in notes):
        notes.append("not run on the GPU: CuPy is not installed")
        return
    try:
        pipe, _ = define()
        pipe.build()
        pipe.run()
    except Exception as e:  # noqa: BLE001
        raise CheckFailed(4, "on the GPU: " + describe(e)) from e


def _run_once(pipe: Any, names: list[str]) -> dict[str, np.ndarray]:
    outs = pipe.run()
    return {n: np.stack([np.asarray(t) for t in o]) for n, o in zip(names, outs, strict=True)}


def check_cpu_twin(build: Callable[[], tuple[Any, list[str]]], case: GraphCase) -> None:
    """Level 5: ``build()`` gives the CPU pipeline of ``case``; it runs one batch of the
    expected shapes and dtypes, and (with ``case.resume``) a pipeline whose feed starts at the
    second batch (a restored loader state) gives the same second batch.

    Raises:
        CheckFailed: at level 5.
    """
    try:
        pipe, names = build()
        pipe.build()
        first = _run_once(pipe, names)
        resume_at = len(next(iter(first.values()))) if case.resume else None
    except Exception as e:  # noqa: BLE001
        raise CheckFailed(5, describe(e)) from e
    want = (BATCH, 3, case.size, case.size)
    dtype = np.float16 if case.half else np.float32
    for view in ("images", "clean"):
        if view in first and (first[view].shape != want or first[view].dtype != dtype):
            raise CheckFailed(
                5, f"{view} are {first[view].dtype}{first[view].shape}, expected {dtype}{want}"
            )
    if resume_at is None:
        return
    try:
        nxt = _run_once(pipe, names)
        restored, _ = build(resume_at)
        restored.build()
        again = _run_once(restored, names)
    except Exception as e:  # noqa: BLE001
        raise CheckFailed(5, "resume: " + describe(e)) from e
    differ = [n for n in names if not np.array_equal(nxt[n], again[n])]
    if differ:
        raise CheckFailed(5, f"the pipeline resumed at batch 2 differs in {differ}")


def validate(case: GraphCase, sources: Sources) -> GraphResult:
    """Check ``case``'s GPU graph (levels 1–4) and its CPU twin (level 5)."""
    if case.problem:
        return GraphResult(case.name, False, 0, f"L1 {LEVELS[1]}: {case.problem}")
    notes: list[str] = []
    try:
        _, notes = check_gpu_graph(builder(case, sources, "gpu"))
        check_cpu_twin(builder(case, sources, "cpu"), case)
    except CheckFailed as e:
        return GraphResult(case.name, False, e.level - 1, str(e), tuple(notes))
    finally:
        gc.collect()  # free each pipeline's threads and buffers before the next
    return GraphResult(case.name, True, 5, "", tuple(notes))


def validate_all(
    data: str | os.PathLike[str] | None = None, names: Iterable[str] | None = None
) -> list[GraphResult]:
    """Check every GPU graph the library can build
    (:func:`~dali_gridaug.testing.cases.graph_cases`).

    Args:
        data: a folder with ``train/`` and ``val/`` image folders (ImageNet-like JPEGs); None
            generates a small one in a temporary folder.
        names: only the cases with these names (all when None).

    Returns:
        One :class:`GraphResult` per case, in case order.

    Raises:
        ValueError: a name in ``names`` is no case's.
    """
    from dali_gridaug.testing.cases import graph_cases

    todo = graph_cases()
    if names is not None:
        wanted = list(names)
        unknown = sorted(set(wanted) - {c.name for c in todo})
        if unknown:
            raise ValueError(f"`names` has unknown graph cases {unknown}")
        todo = [c for c in todo if c.name in wanted]
    with sample_sources(data) as sources:
        return [validate(c, sources) for c in todo]
