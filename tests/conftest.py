"""Suite-wide settings."""

import torch

# Test tensors are tiny: one thread avoids OpenMP hand-offs that made them 10-20x slower on a
# busy 2-core machine, and keeps CPU results bit-identical between runs.
torch.set_num_threads(1)
