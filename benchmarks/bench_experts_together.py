"""Experts trained together against the same experts trained one after the other, same run.

    python -m pytest benchmarks/bench_experts_together.py --benchmark-only --benchmark-columns=median,rounds

GAMES (default breakout, pong, boxing: 4, 6 and 18 actions) each get ACTORMIMIC_BENCH_TOGETHER_FRAMES
emulator frames (default 12,000) with the faithful update ratio (one update of 32 rows per 4 agent steps of
a game), learning from agent step 500 of each game, epsilon held at 0.1 (a real run's steady state), 2 envs
per game, on ACTORMIMIC_BENCH_DEVICE (default cpu), in the default mode of the device. Rates are the steady
state from each run's own progress rows after learning started, frames/s summed over the games: together,
every game's folder reports its own frames/s (they add up); one after the other, the games' frames over the
sum of their times. Target (issue 13, CPU): together >= one after the other.
"""

from __future__ import annotations

import os


from actormimic_fast.agents.dqn import DQNConfig, train_expert, train_experts

from conftest import register_ratio
from steady_state import steady_fps

FRAMES = int(os.environ.get("ACTORMIMIC_BENCH_TOGETHER_FRAMES", 12_000))
DEVICE = os.environ.get("ACTORMIMIC_BENCH_DEVICE", "cpu")
GAMES = os.environ.get("ACTORMIMIC_BENCH_TOGETHER_GAMES", "breakout,pong,boxing").split(",")
LEARNING_STARTS = 500
LOG_EVERY = FRAMES // 8
TIMED_FROM = LEARNING_STARTS * 4 + LOG_EVERY
SETTINGS = dict(frames=FRAMES, num_envs=2, replay_capacity=10_000, learning_starts=LEARNING_STARTS,
                epsilon_start=0.1, epsilon_end=0.1, test_epoch_frames=0, checkpoint_every=10 ** 9,
                log_every=LOG_EVERY, progress=False, tensorboard=False, device=DEVICE)

register_ratio(f"{len(GAMES)} experts: together / one after the other", "experts_together", "experts_one_by_one", 1.0)


def test_together(benchmark, rates, tmp_path):
    summaries = benchmark.pedantic(lambda: train_experts(DQNConfig(out=str(tmp_path), **SETTINGS), GAMES),
                                   rounds=1, iterations=1)
    assert all(s["frames"] == FRAMES and s["updates"] > 0 for s in summaries.values())
    rates["experts_together"] = sum(steady_fps(tmp_path / game, TIMED_FROM) for game in GAMES)


def test_one_after_the_other(benchmark, rates, tmp_path):
    def train_all():
        return [train_expert(DQNConfig(game=game, out=str(tmp_path / game), **SETTINGS)) for game in GAMES]

    summaries = benchmark.pedantic(train_all, rounds=1, iterations=1)
    assert all(s["frames"] == FRAMES and s["updates"] > 0 for s in summaries)
    # equal frames per game: the games' frames over the sum of their times is the harmonic mean of the rates
    rates["experts_one_by_one"] = len(GAMES) / sum(1 / steady_fps(tmp_path / game, TIMED_FROM) for game in GAMES)
