"""actormimic_fast: multitask and transfer RL on Atari (Actor-Mimic), with a C++/CUDA core."""

import importlib.util

import torch  # (loads libtorch, which _C links against)

try:
    from . import _C  # noqa: F401  (loads the native core and registers its ops)
except ImportError as exc:
    if importlib.util.find_spec(f"{__name__}._C") is None:
        raise ImportError("actormimic_fast's native core (_C) is not built: build it with `pip install "
                          "--no-build-isolation -e .` (or `make build`) in the source tree") from exc
    # The extension links against torch's C++ libraries, whose ABI changes between releases: typically an
    # "undefined symbol" from a build against another torch (pip's isolated build environment fetches the newest).
    raise ImportError(f"actormimic_fast's native core (_C) failed to load with torch {torch.__version__}: {exc}. "
                      "It must be built against the torch it runs with: install torch first, then reinstall "
                      "actormimic_fast with `pip install --no-build-isolation ...` (README, Install)") from exc
from .native import ops
from .native.pool import MultiGameEnvPool, PoolStep
from .native.games import PAPER_MULTITASK_GAMES, available_games
from .native.replay import ReplayMemory, TransitionBatch

__all__ = ["MultiGameEnvPool", "PoolStep", "PAPER_MULTITASK_GAMES", "ReplayMemory", "TransitionBatch",
           "available_games", "ops"]
__version__ = "0.1.0"
