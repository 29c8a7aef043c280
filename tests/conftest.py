"""Fixtures of the test suite; helper functions live in ``helpers``."""
from __future__ import annotations

import pytest
import torch

from slimdet.data.datasets import register_generated
from slimdet.data.synthetic import generate


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """A 4+4-image synthetic dataset of 64x64 images, registered as ``tiny_instances_*``."""
    root = tmp_path_factory.mktemp("synthetic")
    generate(str(root), num_train=4, num_val=4, image_size=64, seed=0)
    register_generated(str(root), prefix="tiny")
    return root


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield
