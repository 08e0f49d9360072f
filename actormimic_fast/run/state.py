"""RNG state in checkpoints: the numpy generator of an algorithm and torch's global CPU generator.

Everything is plain data and tensors, so checkpoints load with weights_only=True.
"""

from __future__ import annotations

import numpy as np
import torch


def rng_state(rng: np.random.Generator) -> dict:
    return {"numpy": rng.bit_generator.state, "torch": torch.get_rng_state()}


def restore_rng(rng: np.random.Generator, saved: dict) -> None:
    rng.bit_generator.state = saved["numpy"]
    torch.set_rng_state(saved["torch"])
