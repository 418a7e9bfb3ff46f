"""Fixtures of the STream3R tests: the shared golden fixtures (skipped when absent) and the public tiny
model rebuilt from its recipe (always available)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SHARED

STREAM3R_FIXTURES = SHARED / "fixtures" / "stream3r"


@pytest.fixture(scope="session")
def stream3r_fixtures() -> Path:
    if not STREAM3R_FIXTURES.is_dir():
        pytest.skip(f"STream3R golden fixtures not found at {STREAM3R_FIXTURES} (set TTSA_SHARED)")
    return STREAM3R_FIXTURES


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The public tiny fixture model in the official layout (``config.json`` + ``model.safetensors``)."""
    from tests.stream3r.fixture_model import write_public_tiny_model

    return write_public_tiny_model(tmp_path_factory.mktemp("stream3r_tiny"))


@pytest.fixture(scope="session")
def tiny_net(tiny_model_dir):
    from frontends.stream3r import load_model

    return load_model(tiny_model_dir)
