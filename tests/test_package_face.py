"""The package's face: ``import dali_gridaug`` exports the library (loader, batch,
augmentation configs, sources, Keep stage, losses) and loads neither the tools (and PIL, which
they import) nor the GPU checks; ``dali_gridaug.saliency`` exports only what a user passes or
reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dali_gridaug
import dali_gridaug.saliency

REPO = Path(__file__).resolve().parents[1]
#: modules ``import dali_gridaug`` must not load (prefixes)
NOT_LOADED = ("dali_gridaug.tools", "dali_gridaug.testing", "dali_gridaug.bench", "PIL")


def test_import_loads_neither_tools_nor_pil_nor_the_gpu_checks() -> None:
    code = (
        "import json, sys; import dali_gridaug; "
        f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({NOT_LOADED!r}))))"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, cwd=REPO
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_face_exports_the_library() -> None:
    from dali_gridaug import augment, batch, config, loader, loss, reader, saliency

    expected = {
        "create_loader": loader.create_loader,
        "DaliLoader": loader.DaliLoader,
        "LoaderConfig": config.LoaderConfig,
        "Batch": batch.Batch,
        "GridMask": augment.GridMask,
        "CutMix": augment.CutMix,
        "GridMix": augment.GridMix,
        "FileSource": reader.FileSource,
        "TarSource": reader.TarSource,
        "KeepStage": saliency.KeepStage,
        "SoftTargetCrossEntropy": loss.SoftTargetCrossEntropy,
        "soft_target_cross_entropy": loss.soft_target_cross_entropy,
        "GridMixLoss": loss.GridMixLoss,
    }
    for name, obj in expected.items():
        assert name in dali_gridaug.__all__ and getattr(dali_gridaug, name) is obj, name
    for name in dali_gridaug.__all__:
        assert hasattr(dali_gridaug, name), name
    assert not hasattr(dali_gridaug, "make_sample_dataset")  # dali_gridaug.tools has it


def test_saliency_exports_what_a_user_passes() -> None:
    assert set(dali_gridaug.saliency.__all__) == {
        "BOX_RULES",
        "MAX_MASK_ELEMENTS",
        "METHODS",
        "SALIENCY_KINDS",
        "KeepParams",
        "KeepStage",
    }
    for name in dali_gridaug.saliency.__all__:
        assert hasattr(dali_gridaug.saliency, name), name
