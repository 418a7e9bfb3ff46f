"""A fixture that runs a test with one torch thread. Import it into a test module and use
``pytestmark = pytest.mark.usefixtures("single_torch_thread")``."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def single_torch_thread():
    """Run each test with one intra-op thread (restored afterwards).

    The machine's cores are shared; with two contending OpenMP threads a tiny-model step is ~10x slower.
    Results differ from the 2-thread fixture recordings only by summation order (~4e-6, see the
    fixtures README), far inside the parity tolerances.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
