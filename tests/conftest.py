"""Test-suite wide settings, and the devices end-to-end tests run on."""

import pytest
import torch

# The suite's tensors are tiny: one intra-op thread avoids OpenMP spin contention between
# parallel test processes and keeps CPU results bit-for-bit reproducible.
torch.set_num_threads(1)

#: Devices of the device-parametrised tests: always CPU; CUDA shows up as an explicit skip
#: (with its reason in the ``-ra`` summary) where no GPU is visible, never silently dropped.
DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param(
        "cuda",
        id="cuda",
        marks=pytest.mark.skipif(
            not torch.cuda.is_available(), reason="CUDA not available on this machine"
        ),
    ),
]


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    """Each device of :data:`DEVICES` in turn; a test asking for ``device`` runs on all."""
    return torch.device(request.param)
