"""Slow (outside CI): the expert trainer learns. Boxing, scored against a uniformly random policy.

    ACTORMIMIC_LEARN_FRAMES=1.5M python -m pytest -m slow tests/test_dqn_learning.py -s

Settings are the faithful ones scaled for a short CPU run (replay 100k, learning after 10k steps, epsilon
decayed over 250k frames, target copied every 2k updates, 4 envs, one update per 4 agent steps), with
CleanRL's optimiser (Adam, lr 1e-4) instead of DeepMind's RMSProp: in a 1.2M-frame run with the RMSProp the
network had barely left its initialisation (Q-values nearly equal across states, trunk weights at their
initial scale; test means -15, -11, -19, -24 at 250k..1M frames), while with Adam the Q-values depend on the
state within 500k frames. Only the budget is far below the paper's 50M frames.
ACTORMIMIC_LEARN_OPTIMIZER=rmsprop runs the faithful optimiser instead.
"""

import math
import os

import numpy as np
import pytest

from actormimic_fast.agents.dqn import train_expert
from actormimic_fast.agents.dqn import DQNConfig
from actormimic_fast.run.evaluation import evaluate
from actormimic_fast.run.counts import parse_count


@pytest.mark.slow
def test_boxing_expert_beats_random_play(tmp_path):
    frames = parse_count(os.environ.get("ACTORMIMIC_LEARN_FRAMES", "1500k"), "ACTORMIMIC_LEARN_FRAMES")
    optimizer = os.environ.get("ACTORMIMIC_LEARN_OPTIMIZER", "adam")
    cfg = DQNConfig(game="boxing", frames_per_game=frames, envs_per_game=4, replay_capacity=100_000, learning_starts=10_000,
                    target_update=2_000, epsilon_decay_frames=250_000, train_epoch_frames=250_000,
                    test_epoch_frames=25_000, checkpoint_every=250_000, out=str(tmp_path / "boxing"),
                    optimizer=optimizer, lr=1e-4 if optimizer == "adam" else 2.5e-4,
                    device=os.environ.get("ACTORMIMIC_LEARN_DEVICE", "auto"))
    summary = train_expert(cfg)
    random_play = evaluate(lambda obs, ids: np.zeros(len(ids), np.int64), ["boxing"], frames_per_game=25_000,
                           epsilon=1.0, seed=1)["boxing"]
    print(f"\nboxing after {frames} frames: test {summary['last_test']}, random play mean {random_play.mean:.2f}")
    assert math.isfinite(summary["last_test"]["mean"])
    assert summary["last_test"]["mean"] >= random_play.mean + 10
