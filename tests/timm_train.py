"""timm's ``train.py``, supplied by path (it cannot be vendored): ``$DALI_GRIDAUG_TIMM_TRAIN``
or ``tests/official/timm_train.py``, huggingface/pytorch-image-models ``train.py`` at commit
``aa4b5850c1543fa488abf260f18390eda46cf85d`` (Apache-2.0; fetch it with
``curl -o tests/official/timm_train.py https://raw.githubusercontent.com/huggingface/
pytorch-image-models/aa4b5850c1543fa488abf260f18390eda46cf85d/train.py``). Tests that need it
skip with this message when it is absent; another version fails the hash check.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
SHA256 = "f0bb70b9e1c8c576eb1f7beba9cb46953d01ec1308d68c59ec055a6266f76388"
PATCH = REPO / "examples" / "timm_train" / "train.patch"


def timm_train_path() -> Path:
    """The supplied file, hash-checked; skips the test when there is none."""
    path = Path(os.environ.get("DALI_GRIDAUG_TIMM_TRAIN", REPO / "tests/official/timm_train.py"))
    if not path.is_file():
        pytest.skip(f"timm's train.py not found at {path}; supply it (see tests/timm_train.py)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == SHA256, f"{path} is another version of timm's train.py ({digest})"
    return path


def timm_train_module() -> ModuleType:
    """The supplied train.py imported as a module (its parser is built at import)."""
    spec = importlib.util.spec_from_file_location("timm_train_supplied", timm_train_path())
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
