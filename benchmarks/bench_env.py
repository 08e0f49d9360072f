"""Engine throughput: this pool vs the raw emulator ceiling, ale-py's AtariVectorEnv and gymnasium's
AsyncVectorEnv, same settings (frame skip 4 with max-pool, grayscale, 84x84 area resize, stack 4,
no-op starts, random legal actions), same run. Rates are emulator frames/s (agent steps x 4).

Small VMs drift by tens of percent over seconds, so every timed round of the pool and of its peers is
paired with a raw-ceiling measurement taken just before it (untimed setup), and each benchmark reports
the median of its per-round ratios to that ceiling (key ".../ceiling"). Peers are compared through
those normalised rates.

    make bench            # or: python -m pytest benchmarks/bench_env.py --benchmark-only
Sizes scale with ACTORMIMIC_BENCH_SCALE (default 1.0).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from actormimic_fast import PAPER_MULTITASK_GAMES, MultiGameEnvPool, _C
from actormimic_fast.native.games import rom_path

from conftest import register_ratio

SCALE = float(os.environ.get("ACTORMIMIC_BENCH_SCALE", "1.0"))
CORES = os.cpu_count() or 1
FRAME_SKIP = 4
STEPS = max(50, int(400 * SCALE))  # agent steps per env per round
ROUNDS = 5
CEILING_FRAMES = max(1000, int(6000 * SCALE))  # per thread and game, for each paired ceiling

for _label, _key, _target in [
        ("mix: pool sync (1/game) / raw ceiling", "pool_sync_mix_1", 0.85),
        ("mix: pool sync (2/game) / raw ceiling", "pool_sync_mix_2", 0.85),
        ("mix: pool async (1/game) / raw ceiling", "pool_async_mix_1", 0.85),
        ("mix: pool async (2/game) / raw ceiling", "pool_async_mix_2", 0.85),
        ("mix: ale-py 8 pools (2/game) / raw ceiling", "alepy_mix_2", None),
        ("mix: gymnasium AsyncVectorEnv (1/game) / raw ceiling", "gymnasium_async_mix_1", None),
        ("pong: pool sync (8) / raw ceiling", "pool_sync_pong_8", 0.85),
        ("pong: pool sync (16) / raw ceiling", "pool_sync_pong_16", 0.85),
        ("pong: pool async (8) / raw ceiling", "pool_async_pong_8", 0.85),
        ("pong: pool async (16) / raw ceiling", "pool_async_pong_16", 0.85),
        ("pong: ale-py async (16) / raw ceiling", "alepy_async_pong_16", None)]:
    register_ratio(_label, f"{_key}/ceiling", None, _target)
register_ratio("mix: best pool / ale-py 8 pools", "best_pool_mix/ceiling", "alepy_mix_2/ceiling", 1.6)
register_ratio("mix: best pool / gymnasium AsyncVectorEnv", "best_pool_mix/ceiling", "gymnasium_async_mix_1/ceiling", 3.0)


def random_actions(masks: np.ndarray, steps: int, seed: int = 0) -> np.ndarray:
    """[steps, len(masks)] random legal actions (full-set indices) per env."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.choice(np.flatnonzero(m), size=steps) for m in masks], axis=1).astype(np.int64)


def raw_ceiling(games) -> float:
    """Raw emulator frames/s of `games` (equal frames per game: the harmonic mean of the per-game rates),
    one emulator per core, all cores at once: a bare ALE act() loop in C++, no preprocessing."""
    rates = [_C.raw_emulator_frames_per_second(rom_path(g), CORES, CEILING_FRAMES, FRAME_SKIP) for g in games]
    return len(rates) / sum(1 / r for r in rates)


def paired_benchmark(benchmark, rates, key, run, games, frames):
    """Time `run` for ROUNDS rounds, each right after a raw-ceiling measurement of `games`; record the
    median frames/s and the median per-round ratio to the ceiling."""
    ceilings = []
    benchmark.pedantic(run, setup=lambda: ceilings.append(raw_ceiling(games)), rounds=ROUNDS, iterations=1,
                       warmup_rounds=1)
    times = benchmark.stats.stats.data[-ROUNDS:]
    ratios = sorted(frames / t / c for t, c in zip(times, ceilings[-ROUNDS:]))
    rates[key] = frames / benchmark.stats.stats.median
    rates[f"{key}/ceiling"] = ratios[len(ratios) // 2]
    benchmark.extra_info.update(frames_per_second=rates[key], ratio_to_raw_ceiling=rates[f"{key}/ceiling"])
    if key.startswith("pool_") and "_mix_" in key:
        rates["best_pool_mix/ceiling"] = max(rates.get("best_pool_mix/ceiling", 0.0), rates[f"{key}/ceiling"])


# -- the raw ceiling on its own (per game, for the record) --------------------------------------------

@pytest.mark.parametrize("game", PAPER_MULTITASK_GAMES)
def test_raw_emulator_ceiling(benchmark, rates, game):
    frames = max(2000, int(16000 * SCALE))
    fps = benchmark.pedantic(_C.raw_emulator_frames_per_second, args=(rom_path(game), CORES, frames, FRAME_SKIP),
                             rounds=3, iterations=1)
    assert fps > 0
    rates[f"raw_ceiling_{game}"] = frames * CORES / benchmark.stats.stats.median


# -- this pool ---------------------------------------------------------------------------------------

def run_sync(pool: MultiGameEnvPool, actions: np.ndarray) -> int:
    pool.reset()
    for a in actions:
        out = pool.step(a)
    assert out.obs.shape == (pool.num_envs, 4, 84, 84) and out.obs[:, -1].any()
    return len(actions)


def run_async(pool: MultiGameEnvPool, actions: np.ndarray) -> int:
    """Keep every env busy: each recv'd batch is immediately sent its next actions."""
    steps_done = np.zeros(pool.num_envs, np.int64)
    pool.async_reset()
    total = 0
    target = len(actions) * pool.num_envs
    in_flight = pool.num_envs
    while total < target:
        out = pool.recv()
        ids = out.env_id.copy()
        in_flight -= len(ids)
        total += len(ids)
        pool.send(actions[steps_done[ids] % len(actions), ids], ids)
        steps_done[ids] += 1
        in_flight += len(ids)
    while in_flight >= pool.batch_size:  # drain so the pool can be reused
        pool.recv()
        in_flight -= pool.batch_size
    assert out.obs[:, -1].any()
    return total // pool.num_envs


POOL_CASES = [
    ("mix_1", PAPER_MULTITASK_GAMES, 1),
    ("mix_2", PAPER_MULTITASK_GAMES, 2),
    ("pong_8", ("pong",), 8),
    ("pong_16", ("pong",), 16),
]


@pytest.mark.parametrize("name,games,per_game", POOL_CASES, ids=[c[0] for c in POOL_CASES])
def test_pool_sync(benchmark, rates, name, games, per_game):
    with MultiGameEnvPool(games, envs_per_game=per_game, num_threads=CORES) as pool:
        actions = random_actions(pool.env_action_masks, STEPS)
        paired_benchmark(benchmark, rates, f"pool_sync_{name}", lambda: run_sync(pool, actions), games,
                         STEPS * pool.num_envs * FRAME_SKIP)


@pytest.mark.parametrize("name,games,per_game", POOL_CASES, ids=[c[0] for c in POOL_CASES])
def test_pool_async(benchmark, rates, name, games, per_game):
    num_envs = len(games) * per_game
    with MultiGameEnvPool(games, envs_per_game=per_game, num_threads=CORES,
                          batch_size=max(1, num_envs // 2)) as pool:
        actions = random_actions(pool.env_action_masks, STEPS)
        paired_benchmark(benchmark, rates, f"pool_async_{name}", lambda: run_async(pool, actions), games,
                         STEPS * pool.num_envs * FRAME_SKIP)


# -- peers -------------------------------------------------------------------------------------------

def alepy_vector_env(game: str, num_envs: int, **kwargs):
    from ale_py.vector_env import AtariVectorEnv
    return AtariVectorEnv(game, num_envs, full_action_space=True, frameskip=FRAME_SKIP, stack_num=4,
                          img_height=84, img_width=84, grayscale=True, maxpool=True, noop_max=30,
                          reward_clipping=False, use_fire_reset=False, repeat_action_probability=0.0, **kwargs)


def test_alepy_mix_eight_pools(benchmark, rates):
    """ale-py takes one game per pool: 8 pools, send to all, then receive from all."""
    per_game = 2
    pools = [alepy_vector_env(g, per_game, num_threads=1) for g in PAPER_MULTITASK_GAMES]
    probe = MultiGameEnvPool(PAPER_MULTITASK_GAMES, envs_per_game=per_game)
    actions = random_actions(probe.env_action_masks, STEPS)
    probe.close()

    def run():
        for p in pools:
            p.reset(seed=0)
        for a in actions:
            for g, p in enumerate(pools):
                p.send(a[g * per_game:(g + 1) * per_game])
            for p in pools:
                obs = p.recv()[0]
        assert obs.shape == (per_game, 4, 84, 84)

    paired_benchmark(benchmark, rates, "alepy_mix_2", run, PAPER_MULTITASK_GAMES,
                     STEPS * per_game * len(pools) * FRAME_SKIP)
    for p in pools:
        p.close()


def test_alepy_async_pong(benchmark, rates):
    num_envs = 16
    env = alepy_vector_env("pong", num_envs, batch_size=num_envs // 2, num_threads=CORES)
    rng = np.random.default_rng(0)
    legal = np.array([0, 1, 3, 4, 11, 12])

    def run():
        # ale-py's async protocol: reset() returns the first batch; each send() answers the last batch.
        obs, info = env.reset(seed=0)
        total = len(info["env_id"])
        while total < STEPS * num_envs:
            env.send(rng.choice(legal, size=len(info["env_id"])))
            obs, _, _, _, info = env.recv()
            total += len(info["env_id"])
        assert obs.shape == (num_envs // 2, 4, 84, 84)
        env.recv()  # drain the other half: ale-py aborts if reset() finds envs still in flight

    paired_benchmark(benchmark, rates, "alepy_async_pong_16", run, ("pong",), STEPS * num_envs * FRAME_SKIP)
    env.close()


def test_gymnasium_async_vector_env_mix(benchmark, rates):
    import gymnasium as gym
    from actormimic_fast.reference.atari_reference import make_reference_env

    fns = [lambda g=g: make_reference_env(g, noop_max=30) for g in PAPER_MULTITASK_GAMES]
    env = gym.vector.AsyncVectorEnv(fns)
    probe = MultiGameEnvPool(PAPER_MULTITASK_GAMES)
    actions = random_actions(probe.env_action_masks, STEPS)
    probe.close()

    def run():
        env.reset(seed=0)
        for a in actions:
            obs = env.step(a)[0]
        assert obs.shape == (8, 4, 84, 84)

    paired_benchmark(benchmark, rates, "gymnasium_async_mix_1", run, PAPER_MULTITASK_GAMES, STEPS * 8 * FRAME_SKIP)
    env.close()
