"""The reference DQN preprocessing pipeline, built from gymnasium's Python wrappers.

Used by tests (pixel-exact comparison with the C++ pool) and benchmarks (as the peer that people use
today). One env: ``ALE/<Game>-v5`` with frameskip 1, no sticky actions and the full 18-action set,
wrapped in ``AtariPreprocessing(frame_skip=4, screen_size=84)`` and a zero-padded 4-frame stack.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np


def game_env_id(game: str) -> str:
    """'space_invaders' -> 'ALE/SpaceInvaders-v5'."""
    return "ALE/" + "".join(part.capitalize() for part in game.split("_")) + "-v5"


def make_reference_env(game: str, *, frame_skip: int = 4, stack: int = 4, noop_max: int = 0,
                       max_episode_frames: int = 108_000, terminal_on_life_loss: bool = False) -> gym.Env:
    """gymnasium's Atari pipeline with the settings of MultiGameEnvPool's defaults (noop_max aside)."""
    import ale_py

    gym.register_envs(ale_py)
    env = gym.make(game_env_id(game), frameskip=1, repeat_action_probability=0.0, full_action_space=True,
                   max_num_frames_per_episode=max_episode_frames)
    env = gym.wrappers.AtariPreprocessing(env, noop_max=noop_max, frame_skip=frame_skip, screen_size=84,
                                          terminal_on_life_loss=terminal_on_life_loss)
    return gym.wrappers.FrameStackObservation(env, stack, padding_type="zero")


def make_reference_envs(game: str, num_envs: int, *, frame_skip: int = 4, noop_max: int = 30) -> gym.vector.VectorEnv:
    """What CleanRL-style loops step: gymnasium's AsyncVectorEnv (one subprocess per env) of
    make_reference_env, resetting an episode in the step that ends it (CleanRL's convention)."""
    return gym.vector.AsyncVectorEnv(
        [lambda: make_reference_env(game, noop_max=noop_max, frame_skip=frame_skip) for _ in range(num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


def reference_rollout(game: str, actions: np.ndarray, seed: int = 0, **kwargs) -> dict[str, np.ndarray]:
    """Play `actions` (full-set indices) through the reference pipeline with next-step autoreset, the
    convention of MultiGameEnvPool: the step after an episode ends resets and ignores its action.

    Returns per step: obs [T+1, stack, 84, 84] (index 0 is the first reset), reward, terminated,
    truncated, episode_start (each [T+1]).
    """
    env = make_reference_env(game, **kwargs)
    obs, _ = env.reset(seed=seed)
    out = {"obs": [np.asarray(obs)], "reward": [0.0], "terminated": [False], "truncated": [False],
           "episode_start": [True]}
    done = False
    for action in actions:
        if done:
            obs, _ = env.reset()
            reward, terminated, truncated, start = 0.0, False, False, True
        else:
            obs, reward, terminated, truncated, _ = env.step(int(action))
            start = False
        done = terminated or truncated
        for key, value in (("obs", np.asarray(obs)), ("reward", reward), ("terminated", terminated),
                           ("truncated", truncated), ("episode_start", start)):
            out[key].append(value)
    env.close()
    return {k: np.asarray(v) for k, v in out.items()}
