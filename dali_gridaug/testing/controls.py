"""Negative controls: GPU graphs with a planted error the checks of
:mod:`dali_gridaug.testing.graphs` must catch, at a known level, naming the culprit.

Each is a small GPU pipeline (file reader, nvJPEG ``mixed`` decoder, resize, normalize) with
one mistake that DALI accepts until it builds on a GPU, or refuses only at a given level:

- ``cpu-only op on gpu``: ``fn.batch_permutation`` (CPU kernels only) placed on the GPU; DALI's
  Python graph, its C++ graph and ``Build`` up to the CUDA check all accept it, only the
  registry check (level 2) sees it;
- ``gpu named argument``: ``crop_mirror_normalize``'s ``mirror`` fed from a GPU node (named
  arguments must be CPU nodes), refused by the graph definition (level 1);
- ``cpu output``: a pipeline output left on the CPU (a host copy per batch), level 2;
- ``image op on cpu``: a mask erased on the CPU and multiplied into the GPU images; DALI
  moves it to the GPU itself and accepts the graph, the placement check (level 2) names
  ``Erase``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import Any

from dali_gridaug.augment.base import ones_mask
from dali_gridaug.testing.cases import sample_sources
from dali_gridaug.testing.graphs import CheckFailed, GraphResult, check_gpu_graph


@dataclasses.dataclass(frozen=True)
class Control:
    """A planted error.

    Attributes:
        name: label.
        level: the level whose check must fail (1–4).
        culprit: text the failure message must contain (the operator or output).
        body: ``body(images, label) -> (images, extra)`` on the GPU images ``(32, 32, 3)``
            uint8 HWC and the reader's CPU labels.
    """

    name: str
    level: int
    culprit: str
    body: Callable[[Any, Any], tuple[Any, ...]]


def _cmn(images: Any, **kw: Any) -> Any:
    from nvidia.dali import fn

    return fn.crop_mirror_normalize(images, output_layout="CHW", **kw)


def _batch_permutation(images: Any, label: Any) -> tuple[Any, ...]:
    from nvidia.dali import fn

    return _cmn(images), fn.batch_permutation(device="gpu")


def _gpu_argument(images: Any, label: Any) -> tuple[Any, ...]:
    from nvidia.dali import fn

    return _cmn(images, mirror=fn.random.coin_flip().gpu()), label.gpu()


def _cpu_output(images: Any, label: Any) -> tuple[Any, ...]:
    return _cmn(images), label


def _cpu_image_op(images: Any, label: Any) -> tuple[Any, ...]:
    from nvidia.dali import fn

    ones = ones_mask(32, 32, "cpu")
    mask = fn.erase(ones, anchor=[8.0, 8.0], shape=[16.0, 16.0], axis_names="HW", fill_value=0)
    return _cmn(images * mask), label.gpu()


CONTROLS = (
    Control("cpu-only op on gpu", 2, "BatchPermutation", _batch_permutation),
    Control("gpu named argument", 1, "crop_mirror_normalize", _gpu_argument),
    Control("cpu output", 2, "output 'extra'", _cpu_output),
    Control("image op on cpu", 2, "Erase", _cpu_image_op),
)


def control_pipeline(control: Control, files: Sequence[str]) -> tuple[Any, list[str]]:
    """``control``'s GPU pipeline over the JPEG ``files`` (batch 2, device 0)."""
    from nvidia.dali import fn, pipeline_def

    @pipeline_def(batch_size=2, num_threads=1, device_id=0, exec_dynamic=True)
    def graph() -> tuple[Any, ...]:
        encoded, label = fn.readers.file(files=list(files), name="Reader")
        images = fn.resize(fn.decoders.image(encoded, device="mixed"), size=[32, 32])
        return control.body(images, label)

    return graph(), ["images", "extra"]


def run_control(control: Control, files: Sequence[str]) -> GraphResult:
    """Check ``control``'s graph (levels 1–4); the result should fail at ``control.level``."""
    try:
        level, notes = check_gpu_graph(lambda: control_pipeline(control, files))
    except CheckFailed as e:
        return GraphResult(control.name, False, e.level - 1, str(e))
    return GraphResult(control.name, True, level, "", tuple(notes))


def caught(control: Control, result: GraphResult) -> bool:
    """The checks failed ``control`` at its level with a message naming its culprit."""
    return (
        not result.ok
        and result.level == control.level - 1
        and result.message.startswith(f"L{control.level} ")
        and control.culprit in result.message
    )


def run_controls(
    data: str | os.PathLike[str] | None = None,
) -> list[tuple[Control, GraphResult]]:
    """Every control of :data:`CONTROLS`, with its result (``data`` as
    :func:`~dali_gridaug.testing.graphs.validate_all`).
    """
    with sample_sources(data) as sources:
        files = sources.files["train"].files
        return [(c, run_control(c, files)) for c in CONTROLS]
