"""actormimic_fast: multitask and transfer RL on Atari (Actor-Mimic), with a C++/CUDA core."""

import torch  # noqa: F401  (loads libtorch, which _C links against)

from . import _C  # noqa: F401  (loads the native core and registers its ops)
from . import ops
from .env import MultiGameEnvPool, PoolStep
from .games import PAPER_MULTITASK_GAMES, available_games
from .replay import ReplayMemory, TransitionBatch

__all__ = ["MultiGameEnvPool", "PoolStep", "PAPER_MULTITASK_GAMES", "ReplayMemory", "TransitionBatch",
           "available_games", "ops"]
__version__ = "0.1.0"
