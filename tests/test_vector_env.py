"""The gymnasium VectorEnv wrapper drops into gymnasium code."""

import numpy as np
from gymnasium.vector import AutoresetMode

from actormimic_fast.native.vector_env import MultiGameVectorEnv


def test_vector_env_spaces_step_and_episode_infos():
    env = MultiGameVectorEnv(["pong", "breakout"], envs_per_game=2, noop_max=0, max_episode_frames=200)
    assert env.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert env.num_envs == 4 and env.single_action_space.n == 18
    obs, infos = env.reset(seed=5)
    assert env.observation_space.contains(obs) and infos["action_mask"].shape == (4, 18)
    env.action_space.seed(0)
    finished = 0
    for _ in range(60):  # 200 frames = 50 agent steps: every env is truncated once
        obs, reward, terminated, truncated, infos = env.step(env.action_space.sample())  # illegal -> NOOP
        assert obs.shape == (4, 4, 84, 84) and reward.dtype == np.float64
        finished += infos["_episode"].sum()
        assert (infos["episode"]["l"][infos["_episode"]] > 0).all()
    assert finished >= 4
    obs_again, _ = env.reset(seed=5)
    first, _ = MultiGameVectorEnv(["pong", "breakout"], envs_per_game=2, noop_max=0, seed=5).reset()
    np.testing.assert_array_equal(obs_again, first)
    obs_again[0] = 0  # copies, not views of the pool
    env.close()
