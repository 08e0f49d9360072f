"""A gymnasium ``VectorEnv`` over MultiGameEnvPool, so the pool drops into existing training code.

Every env exposes the full 18-action set (``Discrete(18)``); actions a game does not have play NOOP by
default (``invalid_action="noop"``), and ``infos["action_mask"]`` tells which are legal. Autoreset is
gymnasium's NEXT_STEP mode: the step after an episode ends resets that env and ignores its action.
Observations are copies, safe to keep. Finished episodes are reported RecordEpisodeStatistics-style in
``infos["episode"]`` ({"r", "l"}) with the mask ``infos["_episode"]``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv

from .argument_checks import UINT64_MAX, check_int
from .pool import MultiGameEnvPool, PoolStep
from .games import NUM_ACTIONS


class MultiGameVectorEnv(VectorEnv):
    """gymnasium vector env stepping every game of `games` (envs_per_game copies each) in one C++ pool.

    Keyword arguments are MultiGameEnvPool's (seed, frame_skip, stack, noop_max, num_threads, ...).
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, games: Sequence[str], envs_per_game: int = 1, invalid_action: str = "noop",
                 **pool_kwargs: Any):
        self._games, self._envs_per_game = games, envs_per_game
        self._pool_kwargs = dict(pool_kwargs, invalid_action=invalid_action)
        self.pool = MultiGameEnvPool(games, envs_per_game, **self._pool_kwargs)
        self.num_envs = self.pool.num_envs
        stack = self.pool.reset().obs.shape[1]
        self.single_observation_space = spaces.Box(0, 255, (stack, 84, 84), np.uint8)
        self.single_action_space = spaces.Discrete(NUM_ACTIONS)
        self.observation_space = spaces.Box(0, 255, (self.num_envs, stack, 84, 84), np.uint8)
        self.action_space = spaces.MultiDiscrete(np.full(self.num_envs, NUM_ACTIONS))

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:  # checked before the old pool is closed, so a bad seed leaves this env usable
            check_int("seed", seed, 0, UINT64_MAX)
        super().reset(seed=seed)
        if seed is not None:  # the pool's seed is fixed at construction: rebuild it
            pool = MultiGameEnvPool(self._games, self._envs_per_game, **dict(self._pool_kwargs, seed=seed))
            self.pool.close()
            self.pool = pool
        out = self.pool.reset()
        return out.obs.copy(), self._infos(out)

    def step(self, actions):
        out = self.pool.step(actions)
        return (out.obs.copy(), out.reward.astype(np.float64), out.terminated.copy(), out.truncated.copy(),
                self._infos(out))

    def _infos(self, out: PoolStep) -> dict[str, Any]:
        done = out.done
        return {
            "game_id": out.game_id.copy(),
            "lives": out.lives.copy(),
            "life_loss": out.life_loss.copy(),
            "action_mask": self.pool.env_action_masks,
            "episode": {"r": np.where(done, out.episode_return, 0.0), "l": np.where(done, out.episode_length, 0)},
            "_episode": done.copy(),
        }

    def close_extras(self, **kwargs: Any) -> None:
        self.pool.close()
