"""Engine throughput in steady state: this pool vs the raw emulator ceiling, ale-py's AtariVectorEnv (several
arrangements, the best reported) and gymnasium's AsyncVectorEnv, same settings (frame skip 4 with max-pool,
grayscale, 84x84 area resize, stack 4, no-op starts, random legal actions), same run. Rates are emulator
frames/s (agent steps x 4).

Steady state: every env set (pool or peer) is built and reset before its first round, and a timed round only
steps. Episodes that end inside a round reset there, as in a training run (next-step autoreset, amortised over
the round like any step). Asynchronous rounds: this pool's round sends to every idle env first and drains at
its end, so no work falls outside the timed region; ale-py's async protocol cannot drain (send() answers the
last recv()), so its envs stay in flight between rounds and the <= num_envs steps they finish during the
untimed pairing run (<= 1/STEPS of a round) favour ale-py.

Small VMs drift by tens of percent over seconds, so every timed round is paired with raw-ceiling runs of the
same games and about the same number of frames, one taken just before it and one just after (untimed), and
each benchmark reports the median of its per-round ratios to the geometric mean of those two ceilings (key
".../ceiling", spread in extra_info). Peers are compared through those normalised rates.

    make bench            # or: python -m pytest benchmarks/bench_env.py --benchmark-only
Sizes scale with ACTORMIMIC_BENCH_SCALE (default 1.0).
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from actormimic_fast import PAPER_MULTITASK_GAMES, MultiGameEnvPool, _C
from actormimic_fast.native.games import rom_path

from conftest import register_ratio, register_spread

SCALE = float(os.environ.get("ACTORMIMIC_BENCH_SCALE", "1.0"))
CORES = os.cpu_count() or 1
FRAME_SKIP = 4
STEPS = max(50, int(400 * SCALE))  # agent steps per env per round
ROUNDS = 5

POOL_CASES = [  # (name, games, envs per game)
    ("mix_1", PAPER_MULTITASK_GAMES, 1),
    ("mix_2", PAPER_MULTITASK_GAMES, 2),
    ("pong_8", ("pong",), 8),
    ("pong_16", ("pong",), 16),
]
# ale-py's AtariVectorEnv plays one game per vector env, so the mix needs one per game at least. Arrangements
# of the 2-envs-per-game mix: (name, vector envs per game, num_threads per vector env, batch_size per vector
# env or 0 for synchronous). Async: each vector env returns batch_size envs per recv(), the rest run on.
ALEPY_MIX_CASES = [
    ("8x2_sync_t1", 1, 1, 0),
    ("8x2_sync_t2", 1, 2, 0),
    ("16x1_sync_t1", 2, 1, 0),
    ("8x2_async_b1_t1", 1, 1, 1),
    ("8x2_async_b1_t2", 1, 2, 1),
]
GYM_MIX_CASES = [("mix_1", 1), ("mix_2", 2)]

for _name, _games, _per_game in POOL_CASES:
    _what, _n = ("mix", f"{_per_game}/game") if _name.startswith("mix") else ("pong", str(len(_games) * _per_game))
    for _mode in ("sync", "async"):
        register_ratio(f"{_what}: pool {_mode} ({_n}) / raw ceiling", f"pool_{_mode}_{_name}/ceiling", None,
                       0.95 if _name.startswith("mix") else None)
for _name, *_ in ALEPY_MIX_CASES:
    register_ratio(f"mix: ale-py {_name} (2/game) / raw ceiling", f"alepy_mix_{_name}/ceiling", None)
register_ratio("pong: ale-py async (16) / raw ceiling", "alepy_async_pong_16/ceiling", None)
for _name, _ in GYM_MIX_CASES:
    register_ratio(f"mix: gymnasium AsyncVectorEnv {_name} / raw ceiling", f"gymnasium_async_{_name}/ceiling", None)
register_ratio("mix: best pool / best ale-py arrangement", "best_pool_mix/ceiling", "best_alepy_mix/ceiling", 1.6)
register_ratio("mix: best pool / best gymnasium AsyncVectorEnv", "best_pool_mix/ceiling",
               "best_gymnasium_mix/ceiling", 3.0)


def random_actions(masks: np.ndarray, steps: int, seed: int = 0) -> np.ndarray:
    """[steps, len(masks)] random legal actions (full-set indices) per env."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.choice(np.flatnonzero(m), size=steps) for m in masks], axis=1).astype(np.int64)


def mix_actions(games, per_game: int, steps: int) -> np.ndarray:
    probe = MultiGameEnvPool(games, envs_per_game=per_game)
    actions = random_actions(probe.env_action_masks, steps)
    probe.close()
    return actions


def raw_ceiling(games, frames: int) -> float:
    """Raw emulator frames/s of `games` (equal frames per game: the harmonic mean of the per-game rates),
    one emulator per core, all cores at once: a bare ALE act() loop in C++, no preprocessing, no
    synchronisation. About `frames` frames in all, so it lasts about as long as the round it is paired with."""
    per_thread = max(1000, frames // (len(games) * CORES))
    rates = [_C.raw_emulator_frames_per_second(rom_path(g), CORES, per_thread, FRAME_SKIP) for g in games]
    return len(rates) / sum(1 / r for r in rates)


def paired_benchmark(benchmark, rates, key, run, games, group=None):
    """Time `run` (one steady-state round; returns the emulator frames it produced) for ROUNDS rounds after a
    warm-up round, with a raw-ceiling run of `games` before every round and after the last; record the
    median frames/s and the median per-round ratio to the geometric mean of the ceilings around it."""
    frames, ceilings = [], []
    expected = run.frames_per_round
    benchmark.pedantic(lambda: frames.append(run()), setup=lambda: ceilings.append(raw_ceiling(games, expected)),
                       rounds=ROUNDS, iterations=1, warmup_rounds=1)
    ceilings.append(raw_ceiling(games, expected))
    times = benchmark.stats.stats.data[-ROUNDS:]
    frames, ceilings = frames[-ROUNDS:], ceilings[-(ROUNDS + 1):]
    assert all(f == expected for f in frames), (frames, expected)
    fps = [f / t for f, t in zip(frames, times)]
    ratios = sorted(r / math.sqrt(ceilings[i] * ceilings[i + 1]) for i, r in enumerate(fps))
    rates[key] = float(np.median(fps))
    rates[f"{key}/ceiling"] = ratios[len(ratios) // 2]
    register_spread(f"{key}/ceiling", ratios[0], ratios[-1])
    benchmark.extra_info.update(frames_per_second=rates[key], ratio_to_raw_ceiling=rates[f"{key}/ceiling"],
                                ratios_min_max=(ratios[0], ratios[-1]), ceilings=ceilings)
    if group:
        best = f"best_{group}/ceiling"
        rates[best] = max(rates.get(best, 0.0), rates[f"{key}/ceiling"])


class Round:
    """A timed round: calling it steps the env set and returns the emulator frames produced."""

    def __init__(self, body, frames_per_round: int):
        self.body = body
        self.frames_per_round = frames_per_round

    def __call__(self) -> int:
        return self.body()


# -- the raw ceiling on its own (per game, for the record) --------------------------------------------

@pytest.mark.parametrize("game", PAPER_MULTITASK_GAMES)
def test_raw_emulator_ceiling(benchmark, rates, game):
    frames = max(2000, int(16000 * SCALE))
    fps = benchmark.pedantic(_C.raw_emulator_frames_per_second, args=(rom_path(game), CORES, frames, FRAME_SKIP),
                             rounds=3, iterations=1)
    assert fps > 0
    rates[f"raw_ceiling_{game}"] = frames * CORES / benchmark.stats.stats.median


# -- this pool ---------------------------------------------------------------------------------------

def check_obs(obs: np.ndarray, rows: int) -> None:
    assert obs.shape == (rows, 4, 84, 84) and obs.dtype == np.uint8
    assert all(frame.any() for frame in obs[:, -1])  # every newest frame holds a picture


@pytest.mark.parametrize("name,games,per_game", POOL_CASES, ids=[c[0] for c in POOL_CASES])
def test_pool_sync(benchmark, rates, name, games, per_game):
    with MultiGameEnvPool(games, envs_per_game=per_game, num_threads=CORES) as pool:
        actions = random_actions(pool.env_action_masks, STEPS)
        pool.reset()

        def body():
            for a in actions:
                out = pool.step(a)
            check_obs(out.obs, pool.num_envs)
            return len(actions) * pool.num_envs * FRAME_SKIP

        paired_benchmark(benchmark, rates, f"pool_sync_{name}", Round(body, STEPS * pool.num_envs * FRAME_SKIP),
                         games, group="pool_mix" if name.startswith("mix") else None)


@pytest.mark.parametrize("name,games,per_game", POOL_CASES, ids=[c[0] for c in POOL_CASES])
def test_pool_async(benchmark, rates, name, games, per_game):
    num_envs = len(games) * per_game
    with MultiGameEnvPool(games, envs_per_game=per_game, num_threads=CORES,
                          batch_size=max(1, num_envs // 2)) as pool:
        actions = random_actions(pool.env_action_masks, STEPS)
        steps_done = np.zeros(num_envs, np.int64)
        all_ids = np.arange(num_envs, dtype=np.int32)
        pool.reset()

        def body():
            """Every env steps STEPS times: all idle envs are sent actions, each recv'd batch is sent its
            next actions at once until the round's steps are all sent, then the pool drains."""
            pool.send(actions[steps_done % STEPS, all_ids], all_ids)
            sent, received, target = num_envs, 0, STEPS * num_envs
            while received < target:
                out = pool.recv()
                ids = out.env_id.copy()
                received += len(ids)
                steps_done[ids] += 1
                if sent < target:
                    pool.send(actions[steps_done[ids] % STEPS, ids], ids)
                    sent += len(ids)
            check_obs(out.obs, pool.batch_size)
            return received * FRAME_SKIP

        paired_benchmark(benchmark, rates, f"pool_async_{name}", Round(body, STEPS * num_envs * FRAME_SKIP),
                         games, group="pool_mix" if name.startswith("mix") else None)


# -- peers -------------------------------------------------------------------------------------------

def alepy_vector_env(game: str, num_envs: int, **kwargs):
    from ale_py.vector_env import AtariVectorEnv
    return AtariVectorEnv(game, num_envs, full_action_space=True, frameskip=FRAME_SKIP, stack_num=4,
                          img_height=84, img_width=84, grayscale=True, maxpool=True, noop_max=30,
                          reward_clipping=False, use_fire_reset=False, repeat_action_probability=0.0, **kwargs)


@pytest.mark.parametrize("name,splits,threads,batch", ALEPY_MIX_CASES, ids=[c[0] for c in ALEPY_MIX_CASES])
def test_alepy_mix(benchmark, rates, name, splits, threads, batch):
    """The 8-game mix, 2 envs per game, through ale-py: `splits` vector envs per game, each with `threads`
    threads; synchronous (send to all, then receive from all) or asynchronous (batch envs per recv)."""
    per_game = 2
    per_env = per_game // splits
    games = [g for g in PAPER_MULTITASK_GAMES for _ in range(splits)]
    actions = mix_actions(PAPER_MULTITASK_GAMES, per_game, STEPS)  # column v * per_env + i: env i of vector env v
    envs = [alepy_vector_env(g, per_env, num_threads=threads, batch_size=batch) for g in games]
    cols = [np.arange(v * per_env, (v + 1) * per_env) for v in range(len(envs))]
    frames = STEPS * per_game * len(PAPER_MULTITASK_GAMES) * FRAME_SKIP
    try:
        if batch == 0:
            for e in envs:
                e.reset(seed=0)

            def body():
                for a in actions:
                    for e, c in zip(envs, cols):
                        e.send(a[c])
                    for e in envs:
                        obs = e.recv()[0]
                check_obs(obs, per_env)
                return len(actions) * len(envs) * per_env * FRAME_SKIP
        else:
            # ale-py's async protocol: reset() returns the first batch; each send() answers the last batch.
            last_ids = [e.reset(seed=0)[1]["env_id"] for e in envs]
            step_of = np.zeros(len(envs) * per_env, np.int64)

            def body():
                received = 0
                for _ in range(STEPS * per_env // batch):
                    for v, e in enumerate(envs):
                        c = cols[v][last_ids[v]]
                        e.send(actions[step_of[c] % STEPS, c])
                        step_of[c] += 1
                    for v, e in enumerate(envs):
                        obs, *_, info = e.recv()
                        last_ids[v] = info["env_id"]
                        received += len(last_ids[v])
                check_obs(obs, batch)
                return received * FRAME_SKIP

        paired_benchmark(benchmark, rates, f"alepy_mix_{name}", Round(body, frames), PAPER_MULTITASK_GAMES,
                         group="alepy_mix")
    finally:
        for e in envs:
            e.close()


def test_alepy_async_pong(benchmark, rates):
    num_envs = 16
    env = alepy_vector_env("pong", num_envs, batch_size=num_envs // 2, num_threads=CORES)
    rng = np.random.default_rng(0)
    legal = np.array([0, 1, 3, 4, 11, 12])
    info = env.reset(seed=0)[1]

    def body():
        nonlocal info
        received = 0
        while received < STEPS * num_envs:
            env.send(rng.choice(legal, size=len(info["env_id"])))
            obs, _, _, _, info = env.recv()
            received += len(info["env_id"])
        check_obs(obs, num_envs // 2)
        return received * FRAME_SKIP

    paired_benchmark(benchmark, rates, "alepy_async_pong_16", Round(body, STEPS * num_envs * FRAME_SKIP), ("pong",))
    env.close()


@pytest.mark.parametrize("name,per_game", GYM_MIX_CASES, ids=[c[0] for c in GYM_MIX_CASES])
def test_gymnasium_async_vector_env_mix(benchmark, rates, name, per_game):
    """One process per env (gymnasium's wrappers over ale-py's single env), stepped together."""
    import gymnasium as gym
    from actormimic_fast.reference.atari_reference import make_reference_env

    fns = [lambda g=g: make_reference_env(g, noop_max=30) for g in PAPER_MULTITASK_GAMES for _ in range(per_game)]
    env = gym.vector.AsyncVectorEnv(fns)
    actions = mix_actions(PAPER_MULTITASK_GAMES, per_game, STEPS)
    env.reset(seed=0)

    def body():
        for a in actions:
            obs = env.step(a)[0]
        check_obs(obs, len(fns))
        return len(actions) * len(fns) * FRAME_SKIP

    try:
        paired_benchmark(benchmark, rates, f"gymnasium_async_{name}", Round(body, STEPS * len(fns) * FRAME_SKIP),
                         PAPER_MULTITASK_GAMES, group="gymnasium_mix")
    finally:
        env.close()
