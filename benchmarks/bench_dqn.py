"""Expert DQN training frames/s in the steady state: this trainer (lockstep and overlapped) against the
ceilings of its two phases and against a CleanRL-style loop, all in one run.

    python -m pytest benchmarks/bench_dqn.py --benchmark-only --benchmark-columns=min,median,rounds

Everyone trains the Nature DQN on Pong with the same hyperparameters (DeepMind's RMSProp, batch 32, one
update per 4 agent steps, Huber loss, clipped rewards) for ACTORMIMIC_BENCH_DQN_FRAMES emulator frames
(default 16,000) on ACTORMIMIC_BENCH_DEVICE (default cpu). Two phases stress different parts:
- collect: learning never starts (env stepping, acting at epsilon 1, replay writes). Its ceiling is the
  pool alone stepping the same envs with random legal actions ("pool alone", same thread count).
- learn: updates from agent step 1,000 on, epsilon held at 0.1 (the steady state of a real run, where 90%
  of actions are greedy and cost a forward pass). Its ceiling is the update floor: the updates alone, no
  envs, no replay, with the trainer's torch thread count (16 frames per update at the faithful ratio).
Rates are steady state: the trainer's own progress rows after the first interval (learn: after learning
started), the CleanRL-style loop timed from the same frame, the pool after its reset. Each benchmark checks
the counters of the run it timed.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from actormimic_fast import MultiGameEnvPool
from actormimic_fast.agents.dqn import DQNConfig, train_expert
from actormimic_fast.reference.cleanrl_dqn import time_updates_only, train_cleanrl_dqn

from conftest import register_ratio
from steady_state import steady_fps

FRAMES = int(os.environ.get("ACTORMIMIC_BENCH_DQN_FRAMES", 16_000))
DEVICE = os.environ.get("ACTORMIMIC_BENCH_DEVICE", "cpu")
LEARNING_STARTS = 1_000                  # agent steps
LOG_EVERY = FRAMES // 8
SETTINGS = dict(replay_capacity=10_000, batch_size=32, target_update=10_000, update_every=4)
PHASES = {"collect": dict(learning_starts=10 ** 9, timed_from=LOG_EVERY),
          "learn": dict(learning_starts=LEARNING_STARTS, epsilon_start=0.1, epsilon_end=0.1,
                        timed_from=LEARNING_STARTS * 4 + LOG_EVERY)}
MODES = {"lockstep": True, "overlapped": False}
ENVS = (1, 4)

for _envs in ENVS:
    for _mode in MODES:
        register_ratio(f"dqn collect ({_envs} env), {_mode} / pool alone", f"dqn_collect_{_envs}env_{_mode}",
                       f"dqn_collect_{_envs}env_pool_alone", 0.9)
        register_ratio(f"dqn learn ({_envs} env), {_mode} / update floor", f"dqn_learn_{_envs}env_{_mode}",
                       f"dqn_learn_{_envs}env_update_floor", 0.9)
        for _phase in PHASES:
            register_ratio(f"dqn {_phase} ({_envs} env), {_mode} / CleanRL-style", f"dqn_{_phase}_{_envs}env_{_mode}",
                           f"dqn_{_phase}_{_envs}env_cleanrl")


def expected_updates(learning_starts: int, num_envs: int) -> int:
    steps = FRAMES // 4
    if learning_starts > steps:
        return 0
    first = -(-learning_starts // num_envs) * num_envs          # first step count >= learning_starts
    return ((steps - first) // num_envs + 1) * num_envs // 4


def env_threads(num_envs: int) -> int:
    return min(num_envs, os.cpu_count() or 1)


@pytest.mark.parametrize("num_envs", ENVS)
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("phase", list(PHASES))
def test_trainer(benchmark, rates, tmp_path, phase, mode, num_envs):
    settings = dict(PHASES[phase])
    timed_from = settings.pop("timed_from")
    cfg = DQNConfig(game="pong", frames=FRAMES, num_envs=num_envs, test_epoch_frames=0, checkpoint_every=10 ** 9,
                    log_every=LOG_EVERY, progress=False, tensorboard=False, device=DEVICE, lockstep=MODES[mode],
                    out=str(tmp_path / "run"), **SETTINGS, **settings)
    result = benchmark.pedantic(lambda: train_expert(cfg), rounds=1, iterations=1)
    assert result["frames"] == FRAMES and result["updates"] == expected_updates(cfg.learning_starts, num_envs)
    rates[f"dqn_{phase}_{num_envs}env_{mode}"] = steady_fps(tmp_path / "run", timed_from)


@pytest.mark.parametrize("num_envs", ENVS)
@pytest.mark.parametrize("phase", list(PHASES))
def test_cleanrl_reference(benchmark, rates, phase, num_envs):
    settings = dict(PHASES[phase])
    timed_from = settings.pop("timed_from")
    result = benchmark.pedantic(lambda: train_cleanrl_dqn("pong", frames=FRAMES, num_envs=num_envs, device=DEVICE,
                                                          timed_from_frame=timed_from, **SETTINGS, **settings),
                                rounds=1, iterations=1)
    assert result["frames"] == FRAMES and result["updates"] == expected_updates(settings["learning_starts"], num_envs)
    rates[f"dqn_{phase}_{num_envs}env_cleanrl"] = result["steady_fps"]


@pytest.mark.parametrize("num_envs", ENVS)
def test_pool_alone(benchmark, rates, num_envs):
    """The collect phase's ceiling: the same envs and threads stepping random legal actions, nothing else."""
    steps = FRAMES // 4 // num_envs
    with MultiGameEnvPool(["pong"], envs_per_game=num_envs, num_threads=env_threads(num_envs) + 1) as pool:
        legal = pool.legal_actions(0)
        rng = np.random.default_rng(0)
        actions = legal[rng.integers(len(legal), size=(steps, num_envs))]
        pool.reset()                                   # not timed: a run resets once

        def play():
            for t in range(steps):
                pool.step(actions[t])

        benchmark.pedantic(play, rounds=3, iterations=1)
    rates[f"dqn_collect_{num_envs}env_pool_alone"] = steps * num_envs * 4 / benchmark.stats.stats.median


@pytest.mark.parametrize("num_envs", ENVS)
def test_update_floor(benchmark, rates, num_envs):
    updates = 200
    threads = torch.get_num_threads()
    if DEVICE == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) - env_threads(num_envs)))   # what the trainer leaves torch
    try:
        seconds = benchmark.pedantic(lambda: time_updates_only(updates, device=DEVICE), rounds=1, iterations=1)
    finally:
        torch.set_num_threads(threads)
    rates[f"dqn_learn_{num_envs}env_update_floor"] = updates * SETTINGS["update_every"] * 4 / seconds
