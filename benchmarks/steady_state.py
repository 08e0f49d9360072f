"""Steady-state rates of a training run, read from its own progress rows.

A trainer writes one progress row every log_every frames with the frames/s of that interval; the rows
after ``from_frame`` are the steady state a user lives in (start-up, the first reset, allocation and the
warm-up of learning are in the rows before). Shared by the trainer benchmarks.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import numpy as np
import torch

from actormimic_fast import MultiGameEnvPool
from actormimic_fast.files.run_logs import read_csv
from actormimic_fast.run.acting import random_legal_actions
from actormimic_fast.run.context import default_torch_threads

from conftest import register_spread


def steady_fps(run_folder: str | Path, from_frame: int, games: int = 1) -> float:
    """Frames/s (of all `games` the folder reports) over the progress intervals that start at or after
    from_frame; a row's frames count each game's frames, its fps all its games' frames per second."""
    rows = read_csv(Path(run_folder) / "progress.csv")
    frames = [int(r["frames"]) for r in rows]
    timed = [(frames[i] - frames[i - 1], float(rows[i]["fps"])) for i in range(1, len(rows))
             if frames[i - 1] >= from_frame]
    if not timed:
        raise ValueError(f"{run_folder}: no progress interval starts at or after frame {from_frame}")
    all_frames = sum(f * games for f, _ in timed)
    return all_frames / sum(f * games / fps for f, fps in timed)


def pool_alone_fps(games, envs_per_game: int, num_threads: int, steps: int, seed: int = 0) -> float:
    """A collect phase's ceiling: frames/s of the same envs and threads stepping random legal actions
    (drawn before the clock starts), after an untimed reset. Small VMs drift by tens of percent over
    seconds, so the trainer benchmarks take one of these just before and one just after the run they
    compare (paired_ceiling)."""
    with MultiGameEnvPool(list(games), envs_per_game=envs_per_game, num_threads=num_threads, seed=seed) as pool:
        rng = np.random.default_rng(seed)
        actions = np.stack([random_legal_actions(rng, pool.env_action_masks) for _ in range(steps)])
        pool.reset()
        start = time.perf_counter()
        for t in range(steps):
            pool.step(actions[t])
        seconds = time.perf_counter() - start
    return steps * pool.num_envs * 4 / seconds


def paired_ceiling(before: float, after: float) -> float:
    """The ceiling a run is compared with: the geometric mean of readings just before and just after it."""
    return (before * after) ** 0.5


def paired_rounds(benchmark, rates: dict, key: str, rounds: int, run, ceiling, work=None) -> None:
    """`rounds` runs of run() (one trainer run; returns its steady frames/s), each between two readings of
    ceiling() (and of work(), when given) and compared with their geometric mean. Records the medians as
    rates[key] (frames/s), rates[key/ceiling] (with its spread over rounds) and rates[key/work]."""
    fps, ratios, work_ratios = [], [], []

    def one_round():
        before, work_before = ceiling(), work and work()
        fps.append(run())
        after, work_after = ceiling(), work and work()
        ratios.append(fps[-1] / paired_ceiling(before, after))
        if work:
            work_ratios.append(fps[-1] / paired_ceiling(work_before, work_after))

    benchmark.pedantic(one_round, rounds=rounds, iterations=1)
    rates[key], rates[f"{key}/ceiling"] = float(np.median(fps)), float(np.median(ratios))
    register_spread(f"{key}/ceiling", min(ratios), max(ratios))
    if work_ratios:
        rates[f"{key}/work"] = float(np.median(work_ratios))


def work_alone_fps(games, envs_per_game: int, num_threads: int, act, epsilon: float, steps: int,
                   update=None, steps_per_update: int = 0, seed: int = 0) -> float:
    """What a trainer must run one after the other, alone: no replay, no sampling, no exploration draws,
    no counters, logs or checks. Frames/s of every env.

    Each step: one acting pass, act(obs) over every env, when any env acts greedily (probability
    1 - epsilon^num_envs, drawn before the clock starts); then the envs step with random legal actions.
    With an update (lockstep's learn phase), every steps_per_update-th step earns one, which runs while
    the envs step (send ... update ... recv) as in the trainer; the other steps are pool.step. In lockstep
    the acting passes and the env steps without an update cannot overlap the update (each needs the one
    before it), and in a collect phase every mode acts and steps in turn, so this is those phases' own
    ceiling; the trainer's rate over it is the share the loop itself costs."""
    with MultiGameEnvPool(list(games), envs_per_game=envs_per_game, num_threads=num_threads, seed=seed) as pool:
        rng = np.random.default_rng(seed)
        actions = np.stack([random_legal_actions(rng, pool.env_action_masks) for _ in range(steps)])
        greedy = (rng.random((steps, pool.num_envs)) >= epsilon).any(1)
        every_env = np.arange(pool.num_envs)
        obs = pool.env_tensors.obs.clone()          # the acting pass's cost does not depend on the frames
        pool.reset()
        act(obs)                                    # warm-up (allocator, oneDNN)
        start = time.perf_counter()
        for t in range(steps):
            if greedy[t]:
                act(obs)
            if update is not None and t % steps_per_update == steps_per_update - 1:
                pool.send(actions[t], every_env)
                update()
                pool.recv()
            else:
                pool.step(actions[t])
        if torch.cuda.is_available():
            torch.cuda.synchronize()                # the last update
        seconds = time.perf_counter() - start
    return steps * pool.num_envs * 4 / seconds


@contextlib.contextmanager
def mode_torch_threads(device: str, lockstep: bool, env_threads: int):
    """Torch's threads as a trainer sets them in that mode on a CPU (run/context.py), restored afterwards,
    so that a ceiling is read with the threads the run it is compared with had."""
    threads = torch.get_num_threads()
    if device == "cpu":
        torch.set_num_threads(default_torch_threads(lockstep, os.cpu_count() or 1, env_threads))
    try:
        yield
    finally:
        torch.set_num_threads(threads)
