"""Expert DQN training frames/s in the steady state: this trainer (lockstep and overlapped) against the
ceilings of its two phases and against a CleanRL-style loop, all in one run.

    python -m pytest benchmarks/bench_dqn.py --benchmark-only --benchmark-columns=min,median,rounds

Everyone trains the Nature DQN on Pong with the same hyperparameters (DeepMind's RMSProp, batch 32, one
update per 4 agent steps, Huber loss, clipped rewards) for ACTORMIMIC_BENCH_DQN_FRAMES emulator frames
(default 16,000) on ACTORMIMIC_BENCH_DEVICE (default cpu). Two phases stress different parts:
- collect: learning never starts, epsilon 1 (env stepping, random acting, replay writes). Its ceiling is
  the pool alone stepping the same envs with random legal actions ("pool alone", same thread count),
  measured just before and just after each trainer run (this VM drifts by tens of percent over seconds)
  and compared with their geometric mean (median of 5 such rounds). Greedy steps (a forward pass each) are
  timed in the learn phase.
- learn: updates from agent step 1,000 on, epsilon held at 0.1 (the steady state of a real run, where 90%
  of actions are greedy and cost a forward pass). Its ceiling is the update floor: the updates alone, no
  envs, no replay, with the trainer's torch thread count (16 frames per update at the faithful ratio),
  also taken just before and just after each learn run. Lockstep's learn runs also get a second reading,
  "lockstep work alone": the updates, acting passes and env steps that mode runs one after the other,
  without the loop (steady_state.work_alone_fps); the trainer's rate over it is the loop's own share,
  and the gap between it and the update floor is what lockstep cannot hide.
Rates are steady state: the trainer's own progress rows after the first interval (learn: after learning
started), the CleanRL-style loop timed from the same frame, the pool after its reset. Each benchmark checks
the counters of the run it timed.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch

from actormimic_fast.agents.dqn import DQNConfig, train_expert
from actormimic_fast.run.acting import masked_argmax
from actormimic_fast.run.context import default_env_threads
from actormimic_fast.reference.cleanrl_dqn import time_updates_only, train_cleanrl_dqn, updates_only

from conftest import register_ratio
from steady_state import mode_torch_threads, paired_rounds, pool_alone_fps, steady_fps, work_alone_fps

FRAMES = int(os.environ.get("ACTORMIMIC_BENCH_DQN_FRAMES", 16_000))
DEVICE = os.environ.get("ACTORMIMIC_BENCH_DEVICE", "cpu")
LEARNING_STARTS = 1_000                  # agent steps
LOG_EVERY = FRAMES // 8
SETTINGS = dict(replay_capacity=10_000, batch_size=32, target_update=10_000, update_every=4)
PHASES = {"collect": dict(learning_starts=10 ** 9, epsilon_start=1.0, epsilon_end=1.0, timed_from=LOG_EVERY),
          "learn": dict(learning_starts=LEARNING_STARTS, epsilon_start=0.1, epsilon_end=0.1,
                        timed_from=LEARNING_STARTS * 4 + LOG_EVERY)}
MODES = {"lockstep": True, "overlapped": False}
ENVS = (1, 4)
ROUNDS = {"collect": 5, "learn": 3}       # trainer runs per case, each between two ceiling readings

for _envs in ENVS:
    for _mode in MODES:
        register_ratio(f"dqn collect ({_envs} env), {_mode} / pool alone", f"dqn_collect_{_envs}env_{_mode}/ceiling",
                       None, 0.9)
        register_ratio(f"dqn learn ({_envs} env), {_mode} / update floor", f"dqn_learn_{_envs}env_{_mode}/ceiling",
                       None, 0.9)
        for _phase in PHASES:
            register_ratio(f"dqn {_phase} ({_envs} env), {_mode} / CleanRL-style", f"dqn_{_phase}_{_envs}env_{_mode}",
                           f"dqn_{_phase}_{_envs}env_cleanrl")
    register_ratio(f"dqn learn ({_envs} env), lockstep / work alone", f"dqn_learn_{_envs}env_lockstep/work",
                   None)


def expected_updates(learning_starts: int, num_envs: int) -> int:
    steps = FRAMES // 4
    if learning_starts > steps:
        return 0
    first = -(-learning_starts // num_envs) * num_envs          # first step count >= learning_starts
    return ((steps - first) // num_envs + 1) * num_envs // 4


def env_threads(num_envs: int) -> int:
    """The pool worker threads the trainer starts."""
    return default_env_threads(num_envs, os.cpu_count() or 1)


@pytest.mark.parametrize("num_envs", ENVS)
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("phase", list(PHASES))
def test_trainer(benchmark, rates, tmp_path, phase, mode, num_envs):
    settings = dict(PHASES[phase])
    timed_from = settings.pop("timed_from")
    cfg = DQNConfig(game="pong", frames_per_game=FRAMES, envs_per_game=num_envs, test_epoch_frames=0, checkpoint_every=10 ** 9,
                    log_every=LOG_EVERY, progress=False, tensorboard=False, device=DEVICE, lockstep=MODES[mode],
                    out=str(tmp_path / "run"), **SETTINGS, **settings)
    ceiling = ((lambda: pool_alone_fps(["pong"], num_envs, env_threads(num_envs) + 1, FRAMES // 4 // num_envs))
               if phase == "collect" else (lambda: update_floor_fps(num_envs, MODES[mode])))
    work = (lambda: lockstep_work(num_envs)) if phase == "learn" and MODES[mode] else None

    def one_run() -> float:
        shutil.rmtree(cfg.out, ignore_errors=True)
        result = train_expert(cfg)
        assert result["frames"] == FRAMES and result["updates"] == expected_updates(cfg.learning_starts, num_envs)
        return steady_fps(cfg.out, timed_from)

    paired_rounds(benchmark, rates, f"dqn_{phase}_{num_envs}env_{mode}", ROUNDS[phase], one_run, ceiling, work)


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


def update_floor_fps(num_envs: int, lockstep: bool, updates: int = 100) -> float:
    """The learn phase's ceiling: the updates alone (no envs, no replay) with the torch threads the trainer
    gives itself in that mode, as frames/s at the faithful ratio (one update per 16 frames). Taken just
    before and just after each learn run, like the pool alone for the collect phase."""
    with mode_torch_threads(DEVICE, lockstep, env_threads(num_envs)):
        seconds = time_updates_only(updates, device=DEVICE)
    return updates * SETTINGS["update_every"] * 4 / seconds


def lockstep_work(num_envs: int, updates: int = 25) -> float:
    """What lockstep must run in series in the learn phase, alone (steady_state.work_alone_fps): the
    same updates, an acting pass (the Nature DQN over every env's frames, then its masked argmax) per step
    unless every env explores, the env steps; frames/s. Between this and the update floor lie the acting
    passes and env steps that lockstep cannot hide; between this and the trainer, the loop's own cost."""
    with mode_torch_threads(DEVICE, True, env_threads(num_envs)):
        update, network = updates_only(device=DEVICE)

        legal = torch.ones(num_envs, network.num_actions, dtype=torch.bool, device=DEVICE)

        def act(obs: torch.Tensor) -> np.ndarray:
            with torch.inference_mode():
                return masked_argmax(network(obs.to(DEVICE)), legal).cpu().numpy()

        steps_per_update = SETTINGS["update_every"] // num_envs
        return work_alone_fps(["pong"], num_envs, env_threads(num_envs) + 1, act, PHASES["learn"]["epsilon_end"],
                              updates * steps_per_update, update, steps_per_update)
