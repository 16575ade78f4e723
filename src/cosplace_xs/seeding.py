"""Stateless seeding: every random draw of a run derives from (seed, epoch, iteration, purpose).

Because no generator carries state from one batch to the next, a run resumed at any iteration draws
exactly what an uninterrupted run would, whatever the number of data-loading workers or processes.
"""

from __future__ import annotations

import numpy as np
import torch

DATA = 1
AUGMENT = 2
CLASS_ORDER = 3


def derive_seed(*keys: int) -> int:
    """A 63-bit seed that depends on every key (NumPy's SeedSequence hashing)."""
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 ^ int(state[1])


def generator(*keys: int) -> torch.Generator:
    """A CPU torch.Generator seeded from `keys`."""
    return torch.Generator().manual_seed(derive_seed(*keys))
