"""Test-suite wide settings."""

import torch

# The suite's tensors are tiny: one intra-op thread avoids OpenMP spin contention between
# parallel test processes and keeps CPU results bit-for-bit reproducible.
torch.set_num_threads(1)
