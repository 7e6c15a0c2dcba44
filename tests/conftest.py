"""Suite-wide settings and the shared fixtures.

`data_env` (from `harness_helpers`): the simulated n-digits set generated once per test run into a
temporary data dir, its frame cache, and the plugin path of the fake test methods.
"""

import torch
from harness_helpers import data_env_fixture  # noqa: F401  (the fixture `data_env`, one per test run)

# Test tensors are tiny: one thread avoids OpenMP hand-offs that made them 10-20x slower on a
# busy 2-core machine, and keeps CPU results bit-identical between runs.
torch.set_num_threads(1)
