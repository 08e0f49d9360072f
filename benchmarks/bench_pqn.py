"""Expert PQN training frames/s in the steady state against a CleanRL-style loop, in one run (its update
alone, as GFLOP/s next to the matrix-product ceiling: bench_updates.py).

    python -m pytest benchmarks/bench_pqn.py --benchmark-only --benchmark-columns=min,median,rounds

Training: this trainer (train_pqn_expert with its defaults: 64 envs x 32 steps, 2 epochs x 16 minibatches)
and the CleanRL-style loop (reference/cleanrl_pqn.py with CleanRL's published shape: 8 envs x 128 steps,
4 epochs x 4 minibatches) each train nature_ln on Pong for ACTORMIMIC_BENCH_PQN_FRAMES emulator frames
(default 131,072; a multiple of this trainer's 8,192-frame rollout) on ACTORMIMIC_BENCH_DEVICE (default
cpu), with the same hyperparameters (RAdam 2.5e-4, gamma 0.99, lambda 0.65, clip 10, epsilon 1 -> 0.01
over 10% of the frames). The two published shapes differ in learning work: CleanRL's 4 epochs put every
step through 4 forward and backward passes, this trainer's 2 epochs through 2 (on a CPU the update is most
of the time), so the reference also runs with this trainer's epochs and minibatch rows ("same work": 8 envs
x 128 steps, 2 epochs x 8 minibatches of 128 rows); that ratio is the loop's own speed-up. Rates are steady
state: the trainer's own progress rows after the first interval (a whole number of rollouts each), the
reference timed from the same frame (a rollout boundary).
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch

from actormimic_fast.agents.pqn import PQNConfig, train_pqn_expert
from actormimic_fast.run.context import default_env_threads
from actormimic_fast.reference.cleanrl_pqn import train_cleanrl_pqn

from bench_updates import make_update
from conftest import register_ratio
from steady_state import mode_torch_threads, steady_fps, work_alone_fps

DEFAULTS = PQNConfig()
ROLLOUT_FRAMES = DEFAULTS.rollout_steps * DEFAULTS.envs_per_game * 4        # this trainer's rollout: 8,192
FRAMES = int(os.environ.get("ACTORMIMIC_BENCH_PQN_FRAMES", 16 * ROLLOUT_FRAMES))
DEVICE = os.environ.get("ACTORMIMIC_BENCH_DEVICE", "cpu")
if FRAMES % ROLLOUT_FRAMES or FRAMES < 2 * ROLLOUT_FRAMES:
    raise ValueError(f"ACTORMIMIC_BENCH_PQN_FRAMES must be a multiple of {ROLLOUT_FRAMES} (a rollout of "
                     f"every env) and >= {2 * ROLLOUT_FRAMES}, got {FRAMES}")
MINIBATCH_ROWS = DEFAULTS.rollout_steps * DEFAULTS.envs_per_game // DEFAULTS.minibatches    # 128
LOG_EVERY = max(ROLLOUT_FRAMES, FRAMES // 8 // ROLLOUT_FRAMES * ROLLOUT_FRAMES)    # whole rollouts per row
# CleanRL's published shape, and the same with this trainer's learning per frame (its epochs, minibatch rows)
REFERENCES = {"cleanrl": dict(num_envs=8, num_steps=128, epochs=4, minibatches=4),
              "same_work": dict(num_envs=8, num_steps=128, epochs=DEFAULTS.epochs,
                                minibatches=8 * 128 // MINIBATCH_ROWS)}
TRAINER_ROUNDS = 3

register_ratio("pqn training, this trainer / CleanRL-style", "pqn_train", "pqn_train_cleanrl", 3.0)
register_ratio("pqn training, this trainer / CleanRL-style, same work", "pqn_train",
               "pqn_train_same_work")
register_ratio("pqn training, this trainer / its work alone (acting + update + env steps in series)", "pqn_train",
               "pqn_work_alone")


# -- training -----------------------------------------------------------------------------------------
def test_trainer(benchmark, rates, tmp_path):
    cfg = PQNConfig(game="pong", frames_per_game=FRAMES, test_epoch_frames=0, checkpoint_every=10 ** 9,
                    log_every=LOG_EVERY, progress=False, tensorboard=False, device=DEVICE, out=str(tmp_path / "run"))
    loop_steps = FRAMES // 4 // cfg.envs_per_game
    fps = []

    def one_run() -> None:
        shutil.rmtree(cfg.out, ignore_errors=True)
        result = train_pqn_expert(cfg)
        # credit from loop step 2: one update per rollout_steps loop steps
        assert result["frames"] == FRAMES and result["updates"] == (loop_steps - 1) // cfg.rollout_steps
        fps.append(steady_fps(cfg.out, LOG_EVERY))

    benchmark.pedantic(one_run, rounds=TRAINER_ROUNDS, iterations=1)
    rates["pqn_train"] = float(np.median(fps))


@pytest.mark.parametrize("shape", list(REFERENCES))
def test_cleanrl_reference(benchmark, rates, shape):
    settings = REFERENCES[shape]
    result = benchmark.pedantic(lambda: train_cleanrl_pqn("pong", frames=FRAMES, device=DEVICE,
                                                          timed_from_frame=LOG_EVERY, **settings),
                                rounds=1, iterations=1)
    rollout_frames = settings["num_envs"] * settings["num_steps"] * 4
    assert result["frames"] == FRAMES and result["updates"] == FRAMES // rollout_frames
    rates["pqn_train_cleanrl" if shape == "cleanrl" else f"pqn_train_{shape}"] = result["steady_fps"]


def test_work_alone(benchmark, rates, tmp_path):
    """The trainer's own ceiling in lockstep: its acting passes (every env, every step), its rollout update
    (every rollout_steps steps, while the envs step) and the env steps, one after the other with nothing else
    (steady_state.work_alone_fps); the trainer's rate over it is what its loop, rollout and logs cost."""
    update, network = make_update("pqn", "float32", tmp_path)
    steps = FRAMES // 4 // DEFAULTS.envs_per_game

    @torch.no_grad()
    def act(obs: torch.Tensor) -> None:
        network(obs.to(DEVICE)).max(1)

    threads = default_env_threads(DEFAULTS.envs_per_game, os.cpu_count() or 1)
    with mode_torch_threads(DEVICE, True, threads):
        fps = benchmark.pedantic(lambda: work_alone_fps(["pong"], DEFAULTS.envs_per_game, threads + 1, act, 0.0,
                                                        steps, update, DEFAULTS.rollout_steps),
                                 rounds=1, iterations=1)
    rates["pqn_work_alone"] = fps
