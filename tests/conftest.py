"""Shared fixtures: real JPEG datasets generated once per session."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from dali_gridaug.tools import make_sample_dataset
from tests.helpers import make_constant_dataset

# Distinct flat colours: the pixel value tells which image a pixel came from.
_rng = np.random.default_rng(1234)
COLORS = [tuple(int(v) for v in c) for c in _rng.choice(np.arange(40, 250, 6), size=(32, 3))]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """10 classes × 6 train / 3 val ImageNet-like JPEGs (300–500 px)."""
    root = tmp_path_factory.mktemp("sample")
    return make_sample_dataset(root, num_classes=10, train_per_class=6, val_per_class=3)


@pytest.fixture(scope="session")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes × 4 JPEGs (12 files), 64–80 px: the ``train`` folder."""
    paths = make_sample_dataset(
        tmp_path_factory.mktemp("small"),
        num_classes=3,
        train_per_class=4,
        val_per_class=0,
        size_range=(64, 80),
    )
    return paths["train"]


@pytest.fixture(scope="session")
def color_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """32 classes, one flat-colour 64×48 JPEG each: colour = class = image identity."""
    return make_constant_dataset(tmp_path_factory.mktemp("colors"), COLORS, per_class=1)


@pytest.fixture(autouse=True)
def _few_threads() -> None:
    torch.set_num_threads(min(2, os.cpu_count() or 1))
