"""``cpu-stages``: where the CPU time of a training pipeline goes, stage by stage.

Cumulative DALI pipelines on the CPU backend, each one stage longer than the one before,
built from the library's own graph pieces (:mod:`dali_gridaug.decode`,
:func:`~dali_gridaug.augment.graph.augment_graph`) and run with ``Pipeline.run`` (no torch
conversion, so the figures are the graph's alone):

``read`` (file reader) → ``decode-crop`` (random-resized-crop decode) → ``resize`` (to the
output size, antialiased) → ``normalize`` (flip + CMN to CHW float32: the whole
un-augmented graph); then, each on top of ``normalize``: ``+gridmask-mask`` (GridMask's
visibility mask built, not applied), ``+gridmask`` (mask and multiply), ``+cutmix`` (the uint8
paste). A stage's cost per image is the difference between the ``cpu_s_per_image`` of its
configuration and of the one before it (``+…`` against ``normalize``).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from dali_gridaug.bench.registry import Benchmark, Settings, suite
from dali_gridaug.bench.suites.loaders import our_augment
from dali_gridaug.constants import IMAGENET_MEAN, IMAGENET_STD

#: configuration → (last base stage, augmentation or None, build the mask only)
STAGES: dict[str, tuple[str, str | None, bool]] = {
    "read": ("read", None, False),
    "decode-crop": ("decode-crop", None, False),
    "resize": ("resize", None, False),
    "normalize": ("normalize", None, False),
    "+gridmask-mask": ("normalize", "gridmask", True),
    "+gridmask": ("normalize", "gridmask", False),
    "+cutmix": ("normalize", "cutmix", False),
}
_ORDER = ("read", "decode-crop", "resize", "normalize")


@suite(
    "cpu-stages",
    lambda s: {name: {"stage": name} for name in STAGES},
    baseline="normalize",
    stages=True,
)
class CpuStage(Benchmark):
    """The pipeline up to one stage, on DALI's CPU backend."""

    def __init__(self, settings: Settings, stage: str) -> None:
        super().__init__(settings)
        self.last, self.aug_name, self.mask_only = STAGES[stage]

    def setup(self) -> None:
        from nvidia.dali import fn, pipeline_def

        from dali_gridaug.augment.graph import augment_graph
        from dali_gridaug.decode import decode_random_crop, decode_train, normalize
        from dali_gridaug.params import ParamSource
        from dali_gridaug.presets import IMAGENET

        s, size = self.settings, (self.settings.image_size,) * 2
        depth = _ORDER.index(self.last)
        aug = our_augment(self.aug_name, "auto", s.image_size) if self.aug_name else None
        params = ParamSource(
            [aug] if aug else [],
            batch_size=s.batch_size,
            height=size[0],
            width=size[1],
            seed=s.seed,
            rank=0,
            paste_before_flip=True,
        )
        spec = SimpleNamespace(
            augments=(aug,), size=size, device="cpu", half=False, std=IMAGENET_STD
        )

        @pipeline_def(
            batch_size=s.batch_size,
            num_threads=s.workers,
            device_id=None,
            seed=s.seed,
            prefetch_queue_depth=2,
            exec_dynamic=True,
        )
        def graph() -> Any:
            jpegs, labels = fn.readers.file(file_root=s.root, random_shuffle=True)
            if depth == 0:
                return labels
            if depth == 1:
                return decode_random_crop(jpegs, device="cpu").shape(), labels
            pixels, _ = decode_train(jpegs, IMAGENET, {}, device="cpu", size=size)
            if depth == 2:
                return pixels, labels
            nodes = params.standalone()
            if aug is not None and not self.mask_only:
                x = augment_graph(pixels, nodes, nodes.flip, IMAGENET_MEAN, spec)
                return (x, labels, *nodes.all.values())
            x = normalize(
                pixels,
                mean=IMAGENET_MEAN,
                std=IMAGENET_STD,
                mirror=nodes.flip,
                crop=None,
                layout="CHW",
                half=False,
            )
            mask = () if aug is None else (aug.visible_mask_dali(nodes.augments[0], *size, "cpu"),)
            return (x, *mask, labels, *nodes.all.values())

        self.pipe = graph()
        self.pipe.build()

    def run(self) -> None:
        for _ in range(self.settings.batches):
            self.pipe.run()

    def teardown(self) -> None:
        self.pipe = None

    def describe(self) -> dict[str, Any]:
        stages = list(_ORDER[: _ORDER.index(self.last) + 1])
        if self.aug_name:
            stages.append(f"{self.aug_name} {'mask only' if self.mask_only else '(augment_graph)'}")
        return {
            "implementation": "DALI CPU backend, Pipeline.run: " + " → ".join(stages),
            "threads": self.settings.workers,
        }
