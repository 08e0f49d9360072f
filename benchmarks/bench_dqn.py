"""End-to-end expert DQN training frames/s: this trainer vs a CleanRL-style loop, same run, same settings.

    python -m pytest benchmarks/bench_dqn.py --benchmark-only --benchmark-columns=min,median,rounds

Both train the Nature DQN on Pong with the same hyperparameters (DeepMind's RMSProp, batch 32, one update
per 4 agent steps, Huber loss, clipped rewards) for ACTORMIMIC_BENCH_DQN_FRAMES emulator frames (default
12,000), learning from agent step 1,000 on, on the device in ACTORMIMIC_BENCH_DEVICE (default cpu).
Two phases are timed separately because they stress different parts: "collect" (learning never starts:
env stepping, acting, replay writes) and "learn" (the faithful mix, dominated on a CPU by the gradient
updates). Each benchmark checks the counters of the run it timed.

"update floor" times the learn phase's gradient updates alone (no envs, no replay) with the trainer's
torch thread count: FRAMES / that time is the fastest any loop could run the learn phase at the faithful
update ratio, so "update floor / CleanRL-style" is the largest learn-phase ratio this machine allows.
"""

from __future__ import annotations

import os

import pytest

from actormimic_fast.agents.dqn import train_expert
from actormimic_fast.agents.dqn import DQNConfig
import torch

from actormimic_fast.reference.cleanrl_dqn import time_updates_only, train_cleanrl_dqn

from conftest import register_ratio

FRAMES = int(os.environ.get("ACTORMIMIC_BENCH_DQN_FRAMES", 12_000))
DEVICE = os.environ.get("ACTORMIMIC_BENCH_DEVICE", "cpu")
LEARNING_STARTS = 1_000
SETTINGS = dict(replay_capacity=10_000, batch_size=32, target_update=10_000, update_every=4)

for _phase in ("collect", "learn"):
    for _envs in (1, 4):
        register_ratio(f"dqn {_phase} ({_envs} env): this trainer / CleanRL-style",
                       f"dqn_{_phase}_{_envs}env_trainer", f"dqn_{_phase}_{_envs}env_cleanrl", 3.0)
for _envs in (1, 4):
    register_ratio(f"dqn learn ({_envs} env): update floor / CleanRL-style (the largest ratio possible)",
                   f"dqn_learn_{_envs}env_update_floor", f"dqn_learn_{_envs}env_cleanrl")


def expected_updates(learning_starts: int, num_envs: int) -> int:
    steps = FRAMES // 4
    if learning_starts > steps:
        return 0
    first = -(-learning_starts // num_envs) * num_envs          # first step count >= learning_starts
    return ((steps - first) // num_envs + 1) * num_envs // 4


@pytest.mark.parametrize("num_envs", [1, 4])
@pytest.mark.parametrize("phase", ["collect", "learn"])
def test_trainer(benchmark, rates, tmp_path, phase, num_envs):
    starts = LEARNING_STARTS if phase == "learn" else 10 ** 9
    cfg = DQNConfig(game="pong", frames=FRAMES, num_envs=num_envs, learning_starts=starts, test_epoch_frames=0,
                    checkpoint_every=10 ** 9, log_every=FRAMES, progress=False, tensorboard=False,
                    device=DEVICE, out=str(tmp_path / "run"), **SETTINGS)
    result = benchmark.pedantic(lambda: train_expert(cfg), rounds=1, iterations=1)
    assert result["frames"] == FRAMES and result["updates"] == expected_updates(starts, num_envs)
    rates[f"dqn_{phase}_{num_envs}env_trainer"] = FRAMES / benchmark.stats.stats.median


@pytest.mark.parametrize("num_envs", [1, 4])
@pytest.mark.parametrize("phase", ["collect", "learn"])
def test_cleanrl_reference(benchmark, rates, phase, num_envs):
    starts = LEARNING_STARTS if phase == "learn" else 10 ** 9
    result = benchmark.pedantic(lambda: train_cleanrl_dqn("pong", frames=FRAMES, num_envs=num_envs,
                                                          learning_starts=starts, device=DEVICE, **SETTINGS),
                                rounds=1, iterations=1)
    assert result["frames"] == FRAMES and result["updates"] == expected_updates(starts, num_envs)
    rates[f"dqn_{phase}_{num_envs}env_cleanrl"] = FRAMES / benchmark.stats.stats.median


@pytest.mark.parametrize("num_envs", [1, 4])
def test_update_floor(benchmark, rates, num_envs):
    updates = expected_updates(LEARNING_STARTS, num_envs)
    cores = os.cpu_count() or 1
    threads = torch.get_num_threads()
    if DEVICE == "cpu":
        torch.set_num_threads(max(1, cores - min(num_envs, cores)))   # what train_expert leaves to torch
    try:
        seconds = benchmark.pedantic(lambda: time_updates_only(updates, device=DEVICE), rounds=1, iterations=1)
    finally:
        torch.set_num_threads(threads)
    rates[f"dqn_learn_{num_envs}env_update_floor"] = FRAMES / seconds
