"""Actor-Mimic distillation frames/s in the steady state: this trainer vs its phases' ceilings and a plain
PyTorch + gymnasium loop, same run.

    python -m pytest benchmarks/bench_distill.py --benchmark-only --benchmark-columns=min,median,rounds

Both distil 8 experts (untrained Nature DQNs saved as expert checkpoints; the cost does not depend on their
weights) into one Nature AMN on the paper's 8-game mix, one env per game, for
ACTORMIMIC_BENCH_DISTILL_FRAMES emulator frames per game (default 2,400), in both modes, with the paper's settings:
the AMN acts (epsilon 0.1 over legal actions), 8 rows per game per update, one update per 4 steps,
Adam lr 2.5e-4, tau 1. Two phases: "collect" (learning never starts: env stepping, acting, replay
writes; its ceiling: the pool alone stepping the same envs and threads with random legal actions) and
"learn" (updates from step 100 on; its ceiling: the updates alone with the trainer's torch threads, "update
floor"). Each trainer run sits between two readings of its ceiling and is compared with their geometric
mean (median of ROUNDS runs). Collect runs and lockstep's learn runs also sit between two readings of
"work alone": what the run must do one after the other, without the loop (acting passes, env steps and in
lockstep the updates; steady_state.work_alone_fps). The reference is
actormimic_fast/reference/distill_reference.py (AsyncVectorEnv of gymnasium's Atari wrappers, numpy
replay, one expert pass per game, eager loss). Rates are emulator frames/s summed over the 8 games, in the
steady state: the trainer's own progress rows after the first interval (learn: after learning started),
the plain loop's wall time (it has no reset-free clock; its reset is a few percent of a run), the pool
after its reset.
"""

from __future__ import annotations

import os
import shutil
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from actormimic_fast import ReplayMemory
from actormimic_fast.agents.distill import ActorMimic, DistillConfig, distill, load_experts
from actormimic_fast.files.checkpoint import save_checkpoint
from actormimic_fast.run.processes import ProcessInfo
from actormimic_fast.native.pool import MultiGameEnvPool
from actormimic_fast.native.games import PAPER_MULTITASK_GAMES
from actormimic_fast.models.networks import build_network
from actormimic_fast.reference.distill_reference import distill_reference

from actormimic_fast.run.acting import masked_argmax, random_legal_actions
from actormimic_fast.run.context import default_env_threads

from conftest import register_ratio
from steady_state import mode_torch_threads, paired_rounds, pool_alone_fps, steady_fps, work_alone_fps

FRAMES = int(os.environ.get("ACTORMIMIC_BENCH_DISTILL_FRAMES", 2_400))
DEVICE = os.environ.get("ACTORMIMIC_BENCH_DEVICE", "cpu")
GAMES = list(PAPER_MULTITASK_GAMES)
LEARNING_STARTS = {"collect": 10 ** 9, "learn": 100}
SETTINGS = dict(replay_capacity=5_000, per_game=8, update_every=4, epsilon=0.1, tau=1.0, lr=2.5e-4)

LOG_EVERY = FRAMES // 6
TIMED_FROM = {"collect": LOG_EVERY, "learn": LEARNING_STARTS["learn"] * 4 + LOG_EVERY}
MODES = {"lockstep": True, "overlapped": False}
ROUNDS = 3                                   # trainer runs per case, each between two ceiling readings
for _mode in MODES:
    for _phase in LEARNING_STARTS:
        register_ratio(f"distill {_phase} (8 games), {_mode} / plain loop", f"distill_{_phase}_{_mode}",
                       f"distill_{_phase}_reference", 3.0)
    register_ratio(f"distill collect (8 games), {_mode} / pool alone", f"distill_collect_{_mode}/ceiling", None, 0.9)
    register_ratio(f"distill learn (8 games), {_mode} / update floor", f"distill_learn_{_mode}/ceiling", None, 0.9)
    register_ratio(f"distill collect (8 games), {_mode} / work alone", f"distill_collect_{_mode}/work",
                   None)
register_ratio("distill learn (8 games), lockstep / work alone", "distill_learn_lockstep/work", None)


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


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("phase", list(LEARNING_STARTS))
def test_trainer(benchmark, rates, tmp_path, expert_paths, floor_update, phase, mode):
    """ROUNDS trainer runs, each between two readings of its phase's ceiling (this VM drifts by tens of
    percent within a minute) and compared with their geometric mean; the median round is reported."""
    cfg = DistillConfig(experts=",".join(expert_paths), frames_per_game=FRAMES, lockstep=MODES[mode],
                        learning_starts=LEARNING_STARTS[phase], test_epoch_frames=0, checkpoint_every=10 ** 9,
                        log_every=LOG_EVERY, progress=False, tensorboard=False, device=DEVICE,
                        out=str(tmp_path / "amn"), **SETTINGS)
    env_threads = default_env_threads(len(GAMES), os.cpu_count() or 1)
    if phase == "collect":      # the same 8 envs and threads stepping random legal actions
        ceiling = lambda: pool_alone_fps(GAMES, 1, env_threads + 1, FRAMES // 4)       # noqa: E731
    else:
        ceiling = lambda: update_floor_fps(floor_update, MODES[mode], env_threads)       # noqa: E731
    work = None if phase == "learn" and not MODES[mode] else (
        lambda: work_alone(floor_update, env_threads, phase == "learn", MODES[mode]))

    def one_run() -> float:
        shutil.rmtree(cfg.out, ignore_errors=True)
        result = distill(cfg)
        steps = FRAMES // 4
        assert result["frames"] == FRAMES and result["steps"] == steps
        assert result["updates"] == trainer_updates(steps, LEARNING_STARTS[phase])
        return steady_fps(cfg.out, TIMED_FROM[phase], games=len(GAMES))

    paired_rounds(benchmark, rates, f"distill_{phase}_{mode}", ROUNDS, one_run, ceiling, work)


@pytest.fixture(scope="module")
def floor_update(expert_paths, tmp_path_factory):
    """The trainer's algorithm on a filled replay and one minibatch of it, built once for every floor reading."""
    cfg = DistillConfig(experts=",".join(expert_paths), device=DEVICE, **SETTINGS)
    with MultiGameEnvPool(GAMES, envs_per_game=1, seed=0) as pool:
        replay = ReplayMemory.for_pool(pool, 1_000)
        rng = np.random.default_rng(0)
        replay.add_step(pool.reset(), np.zeros(pool.num_envs, np.int64))
        for _ in range(64):
            actions = random_legal_actions(rng, pool.env_action_masks)
            replay.add_step(pool.step(actions), actions)
        run = SimpleNamespace(device=torch.device(DEVICE), process=ProcessInfo(0, 1, 0), segment=0, lead=True,
                              out_dir=tmp_path_factory.mktemp("floor"))
        algo = ActorMimic(cfg, load_experts(cfg.expert_paths), [pool.legal_actions(g) for g in range(8)],
                          pool.game_ids.astype(np.int64), run, replay)
    return algo, algo.sample(replay, replay.empty_batch(algo.batch_rows))


def update_floor_fps(floor_update, lockstep: bool, env_threads: int, updates: int = 40) -> float:
    """The learn phase's ceiling: the trainer's own update alone (teachers' pass, AMN forward and backward,
    Adam) on a filled replay, with the torch threads the trainer gives itself in this mode; frames/s at one
    update per 4 steps of the 8 games."""
    algo, batch = floor_update
    with mode_torch_threads(DEVICE, lockstep, env_threads):
        algo.update(batch)                               # warm-up (allocator, oneDNN)
        start = time.perf_counter()
        for _ in range(updates):
            algo.update(batch)
        if DEVICE != "cpu":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    frames_per_update = SETTINGS["update_every"] * 4 * len(GAMES)      # 4 steps of every game's env
    return updates * frames_per_update / seconds


def work_alone(floor_update, env_threads: int, learn: bool, lockstep: bool, updates: int = 10) -> float:
    """What a run must do in series, alone (steady_state.work_alone_fps): the AMN's acting pass over the 8
    envs (masked argmax over each game's actions) per step unless every env explores, the env steps, and
    in lockstep's learn phase the trainer's update every 4 steps; frames/s. Between this and the phase's
    ceiling lie the acting passes (and in lockstep the env steps) that cannot be hidden; between this and
    the trainer, the loop's own cost. Torch's threads as the trainer sets them in that mode."""
    algo, batch = floor_update

    def act(obs: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return masked_argmax(algo.online(obs.to(DEVICE)), algo.device_masks).cpu().numpy()

    every = SETTINGS["update_every"]
    with mode_torch_threads(DEVICE, lockstep, env_threads):
        if learn:
            return work_alone_fps(GAMES, 1, env_threads + 1, act, SETTINGS["epsilon"], updates * every,
                                  lambda: algo.update(batch), every)
        return work_alone_fps(GAMES, 1, env_threads + 1, act, SETTINGS["epsilon"], FRAMES // 4)


@pytest.mark.parametrize("phase", list(LEARNING_STARTS))
def test_reference(benchmark, rates, expert_paths, phase):
    result = benchmark.pedantic(lambda: distill_reference(expert_paths, frames_per_game=FRAMES,
                                                          learning_starts=LEARNING_STARTS[phase], device=DEVICE,
                                                          **SETTINGS), rounds=1, iterations=1)
    steps = FRAMES // 4
    assert result["frames_per_game"] == FRAMES and result["steps"] == steps
    assert result["updates"] == reference_updates(steps, LEARNING_STARTS[phase])
    rates[f"distill_{phase}_reference"] = FRAMES * len(GAMES) / benchmark.stats.stats.median
