"""End-to-end Actor-Mimic distillation frames/s: this trainer vs a plain PyTorch + gymnasium loop, same run.

    python -m pytest benchmarks/bench_distill.py --benchmark-only --benchmark-columns=min,median,rounds

Both distil 8 experts (untrained Nature DQNs saved as expert checkpoints; the cost does not depend on their
weights) into one Nature AMN on the paper's 8-game mix, one env per game stepped in lockstep, for
ACTORMIMIC_BENCH_DISTILL_FRAMES emulator frames per game (default 2,400), with the paper's settings:
the AMN acts (epsilon 0.1 over legal actions), 8 rows per game per update, one update per 4 steps,
Adam lr 2.5e-4, tau 1. Two phases: "collect" (learning never starts: env stepping, acting, replay
writes) and "learn" (updates from step 100 on). The reference is actormimic_fast/reference/distill_reference.py
(AsyncVectorEnv of gymnasium's Atari wrappers, numpy replay, one expert pass per game, eager loss).
Rates are emulator frames/s summed over the 8 games.
"""

from __future__ import annotations

import os

import pytest
import torch

from actormimic_fast.agents.distill import distill
from actormimic_fast.agents.distill import DistillConfig
from actormimic_fast.checkpoint import save_checkpoint
from actormimic_fast.env import MultiGameEnvPool
from actormimic_fast.games import PAPER_MULTITASK_GAMES
from actormimic_fast.networks import build_network
from actormimic_fast.reference.distill_reference import distill_reference

from conftest import register_ratio

FRAMES = int(os.environ.get("ACTORMIMIC_BENCH_DISTILL_FRAMES", 2_400))
DEVICE = os.environ.get("ACTORMIMIC_BENCH_DEVICE", "cpu")
GAMES = list(PAPER_MULTITASK_GAMES)
LEARNING_STARTS = {"collect": 10 ** 9, "learn": 100}
SETTINGS = dict(replay_capacity=5_000, per_game=8, update_every=4, epsilon=0.1, tau=1.0, lr=2.5e-4)

for _phase in LEARNING_STARTS:
    register_ratio(f"distill {_phase} (8 games): this trainer / plain loop", f"distill_{_phase}_trainer",
                   f"distill_{_phase}_reference", 3.0)


@pytest.fixture(scope="module")
def expert_paths(tmp_path_factory):
    folder = tmp_path_factory.mktemp("experts")
    with MultiGameEnvPool(GAMES, envs_per_game=1) as pool:
        legal = [pool.legal_actions(g).tolist() for g in range(pool.num_games)]
    paths = []
    for i, (game, actions) in enumerate(zip(GAMES, legal)):
        torch.manual_seed(i)
        network = build_network("nature", len(actions))
        meta = {"kind": "expert", "game": game, "actions": actions, "architecture": "nature",
                "num_actions": len(actions)}
        paths.append(str(save_checkpoint(folder / f"{game}.pt", {"online": network.state_dict()}, meta)))
    return paths


def trainer_updates(steps: int, learning_starts: int) -> int:
    """Credit 1/4 per step from step learning_starts on."""
    return max(0, steps - learning_starts + 1) // SETTINGS["update_every"]


def reference_updates(steps: int, learning_starts: int) -> int:
    """One update at every step count >= learning_starts divisible by 4."""
    every = SETTINGS["update_every"]
    return steps // every - (learning_starts - 1) // every if steps >= learning_starts else 0


@pytest.mark.parametrize("phase", list(LEARNING_STARTS))
def test_trainer(benchmark, rates, tmp_path, expert_paths, phase):
    cfg = DistillConfig(experts=",".join(expert_paths), frames_per_game=FRAMES,
                        learning_starts=LEARNING_STARTS[phase], test_epoch_frames=0, checkpoint_every=10 ** 9,
                        log_every=FRAMES, progress=False, tensorboard=False, device=DEVICE,
                        out=str(tmp_path / "amn"), **SETTINGS)
    result = benchmark.pedantic(lambda: distill(cfg), rounds=1, iterations=1)
    steps = FRAMES // 4
    assert result["frames"] == FRAMES and result["steps"] == steps
    assert result["updates"] == trainer_updates(steps, LEARNING_STARTS[phase])
    rates[f"distill_{phase}_trainer"] = FRAMES * len(GAMES) / benchmark.stats.stats.median


@pytest.mark.parametrize("phase", list(LEARNING_STARTS))
def test_reference(benchmark, rates, expert_paths, phase):
    result = benchmark.pedantic(lambda: distill_reference(expert_paths, frames_per_game=FRAMES,
                                                          learning_starts=LEARNING_STARTS[phase], device=DEVICE,
                                                          **SETTINGS), rounds=1, iterations=1)
    steps = FRAMES // 4
    assert result["frames_per_game"] == FRAMES and result["steps"] == steps
    assert result["updates"] == reference_updates(steps, LEARNING_STARTS[phase])
    rates[f"distill_{phase}_reference"] = FRAMES * len(GAMES) / benchmark.stats.stats.median
