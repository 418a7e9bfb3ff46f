"""Shared test fixtures: the location of ``../shared`` and skip markers for tests that need it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TTSA_SHARED", REPO.parent / "shared")).resolve()
FIXTURES = SHARED / "fixtures" / "cut3r"
ICL = SHARED / "data" / "icl_livingroom1_micro"

def load_tool(name: str):
    """Import the script ``tools/<name>.py`` as a module (tools are scripts, not a package)."""
    import importlib

    tools = str(REPO / "tools")
    sys.path.insert(0, tools)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(tools)


needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"shared data folder not found at {SHARED} (set TTSA_SHARED)"
)
needs_fixtures = pytest.mark.skipif(
    not FIXTURES.is_dir(), reason=f"CUT3R golden fixtures not found at {FIXTURES} (set TTSA_SHARED)"
)
needs_icl = pytest.mark.skipif(
    not ICL.is_dir(), reason=f"ICL sequence not found at {ICL} (set TTSA_SHARED)"
)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.skip(f"CUT3R golden fixtures not found at {FIXTURES}")
    return FIXTURES


@pytest.fixture(scope="session")
def icl_dir() -> Path:
    if not ICL.is_dir():
        pytest.skip(f"ICL sequence not found at {ICL}")
    return ICL


@pytest.fixture
def single_open3d_thread():
    """Run a test with Open3D limited to one CPU thread (restored afterwards).

    Open3D's threaded sums differ in the last bits from run to run, which an odometry's convergence test can
    turn into ~1 mm; tests that compare two runs of the same frames exactly need one thread.
    """
    import open3d as o3d

    previous = o3d.utility.get_max_threads()
    o3d.utility.set_max_threads(1)
    yield
    o3d.utility.set_max_threads(previous)
