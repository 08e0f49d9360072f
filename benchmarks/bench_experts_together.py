"""Experts trained together against the same experts trained one after the other, same run.

    python -m pytest benchmarks/bench_experts_together.py --benchmark-only --benchmark-columns=median,rounds

GAMES (default breakout, pong, boxing: 4, 6 and 18 actions) each get ACTORMIMIC_BENCH_TOGETHER_FRAMES
emulator frames (default 12,000) with the faithful update ratio (one update of 32 rows per 4 agent steps of
a game), learning from agent step 500 of each game, epsilon held at 0.1 (a real run's steady state), 2 envs
per game, on ACTORMIMIC_BENCH_DEVICE (default cpu), in the default mode of the device. Rates are the steady
state from each run's own progress rows after learning started, frames/s summed over the games: together,
every game's folder reports its own frames/s (they add up); one after the other, the games' frames over the
sum of their times. The two arrangements run back to back in ACTORMIMIC_BENCH_TOGETHER_PAIRS pairs (default
2), the order alternating; the ratio is the median over pairs. Target (issue 13, CPU): together >= one after
the other.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from actormimic_fast.agents.dqn import DQNConfig, train_expert, train_experts

from conftest import register_ratio, register_spread
from steady_state import steady_fps

FRAMES = int(os.environ.get("ACTORMIMIC_BENCH_TOGETHER_FRAMES", 12_000))
DEVICE = os.environ.get("ACTORMIMIC_BENCH_DEVICE", "cpu")
GAMES = os.environ.get("ACTORMIMIC_BENCH_TOGETHER_GAMES", "breakout,pong,boxing").split(",")
LEARNING_STARTS = 500
LOG_EVERY = FRAMES // 8
TIMED_FROM = LEARNING_STARTS * 4 + LOG_EVERY
SETTINGS = dict(frames_per_game=FRAMES, envs_per_game=2, replay_capacity=10_000, learning_starts=LEARNING_STARTS,
                epsilon_start=0.1, epsilon_end=0.1, test_epoch_frames=0, checkpoint_every=10 ** 9,
                log_every=LOG_EVERY, progress=False, tensorboard=False, device=DEVICE)

PAIRS = int(os.environ.get("ACTORMIMIC_BENCH_TOGETHER_PAIRS", 2))

register_ratio(f"{len(GAMES)} experts: together / one after the other", "experts_together/one_by_one", None, 1.0)


def together_fps(folder: Path) -> float:
    summaries = train_experts(DQNConfig(out=str(folder), **SETTINGS), GAMES)
    assert all(s["frames"] == FRAMES and s["updates"] > 0 for s in summaries.values())
    return sum(steady_fps(folder / game, TIMED_FROM) for game in GAMES)       # each folder reports its games' share


def one_by_one_fps(folder: Path) -> float:
    summaries = [train_expert(DQNConfig(game=game, out=str(folder / game), **SETTINGS)) for game in GAMES]
    assert all(s["frames"] == FRAMES and s["updates"] > 0 for s in summaries)
    # equal frames per game: the games' frames over the sum of their times is the harmonic mean of the rates
    return len(GAMES) / sum(1 / steady_fps(folder / game, TIMED_FROM) for game in GAMES)


def test_together_vs_one_after_the_other(benchmark, rates, tmp_path):
    """PAIRS pairs of runs, the two arrangements back to back (order alternating from pair to pair), so that
    this VM's drift over minutes cancels in each pair's ratio; the median ratio is reported."""
    together, one_by_one, ratios = [], [], []

    def one_pair():
        k = len(ratios)
        arrangements = [(together_fps, together), (one_by_one_fps, one_by_one)]
        for run, rates_of in arrangements if k % 2 == 0 else arrangements[::-1]:
            shutil.rmtree(tmp_path / "run", ignore_errors=True)
            rates_of.append(run(tmp_path / "run"))
        ratios.append(together[-1] / one_by_one[-1])

    benchmark.pedantic(one_pair, rounds=PAIRS, iterations=1)
    rates["experts_together"], rates["experts_one_by_one"] = float(np.median(together)), float(np.median(one_by_one))
    rates["experts_together/one_by_one"] = float(np.median(ratios))
    register_spread("experts_together/one_by_one", min(ratios), max(ratios))
