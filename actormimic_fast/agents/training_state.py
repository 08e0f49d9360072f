"""The state a Q-learning run checkpoints besides its config, and how a resumed run puts it back.

Shared by the expert DQN (agents/dqn.py) and the multitask DQN baselines (agents/multitask_dqn.py):
online and target networks, optimiser, counters, numpy and torch RNG states, and the replay memory when
the run saves it. Everything is tensors and plain data, so checkpoints load with weights_only=True.
"""

from __future__ import annotations

import numpy as np
import torch


def rng_state(rng: np.random.Generator) -> dict:
    return {"numpy": rng.bit_generator.state, "torch": torch.get_rng_state()}


def restore_rng(rng: np.random.Generator, saved: dict) -> None:
    rng.bit_generator.state = saved["numpy"]
    torch.set_rng_state(saved["torch"])


def q_learning_state(online: torch.nn.Module, target: torch.nn.Module, optimizer: torch.optim.Optimizer,
                     counters: dict, rng: np.random.Generator, config: dict, replay=None) -> dict:
    """The checkpoint body (save_checkpoint adds the meta); the replay only when given."""
    state = {"online": online.state_dict(), "target": target.state_dict(), "optimizer": optimizer.state_dict(),
             "counters": dict(counters), "rng": rng_state(rng), "config": config}
    if replay is not None:
        state["replay"] = replay.state_dict()
    return state


def restore_q_learning(payload: dict, online: torch.nn.Module, target: torch.nn.Module,
                       optimizer: torch.optim.Optimizer, rng: np.random.Generator, replay) -> bool:
    """Load a q_learning_state checkpoint into the run's objects; True when the replay came back too."""
    online.load_state_dict(payload["online"])
    target.load_state_dict(payload["target"])
    optimizer.load_state_dict(payload["optimizer"])
    restore_rng(rng, payload["rng"])
    if "replay" in payload:
        replay.load_state_dict(payload["replay"])
        return True
    return False
