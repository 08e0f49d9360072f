"""Cost of the pool's colour-screen capture (pool.capture_screens, for videos): the 8-game mix (one env per
game) stepped synchronously with capture off, on for one env (evaluate --record) and on for every env (play's
grid), in the same run. Each round times the three modes back to back (their order rotating), so machine drift
hits them alike; the ratios are medians of per-round ratios. "off / raw ceiling" is comparable with bench_env's
"mix: pool sync (1/game) / raw ceiling" (RESULTS.md), the same workload before capture existed.

    python -m pytest benchmarks/bench_screen_capture.py --benchmark-only
    python -m pytest benchmarks/bench_env.py benchmarks/bench_screen_capture.py -k "screen_capture or (pool_sync and mix_1)" \
        --benchmark-only        # with bench_env's pool sync in the same run
Sizes scale with ACTORMIMIC_BENCH_SCALE (default 1.0).
"""

from __future__ import annotations

import time

import numpy as np

from actormimic_fast import PAPER_MULTITASK_GAMES, MultiGameEnvPool

from bench_env import CORES, FRAME_SKIP, ROUNDS, STEPS, random_actions, raw_ceiling, run_sync
from conftest import register_ratio

MODES = {"off": [], "one": [0], "all": list(range(len(PAPER_MULTITASK_GAMES)))}

register_ratio("screen capture: off / raw ceiling (8-game mix, 1/game)", "capture_off/ceiling", None, None)
register_ratio("screen capture: off / bench_env pool sync (1/game), per ceiling", "capture_off/ceiling",
               "pool_sync_mix_1/ceiling", 0.95)
register_ratio("screen capture: one env on / off (speed)", "capture_one/off", None, 0.95)
register_ratio("screen capture: every env on / off (speed)", "capture_all/off", None, None)


def test_screen_capture_cost(benchmark, rates):
    frames = STEPS * len(PAPER_MULTITASK_GAMES) * FRAME_SKIP
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    ceilings: list[float] = []
    with MultiGameEnvPool(PAPER_MULTITASK_GAMES, num_threads=CORES, seed=0) as pool:
        actions = random_actions(pool.env_action_masks, STEPS)

        def one_round():
            ceilings.append(raw_ceiling(PAPER_MULTITASK_GAMES))
            order = list(MODES)
            shift = len(ceilings) % len(order)
            for mode in order[shift:] + order[:shift]:
                pool.capture_screens(MODES[mode])
                start = time.perf_counter()
                run_sync(pool, actions)
                times[mode].append(time.perf_counter() - start)
            pool.capture_screens([])
            assert pool.screens.shape == (pool.num_envs, 210, 160, 3) and pool.screens[0].any()

        benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    kept = {mode: np.array(t[-ROUNDS:]) for mode, t in times.items()}
    for mode, t in kept.items():
        rates[f"capture_{mode}_fps"] = frames / float(np.median(t))
    rates["capture_off/ceiling"] = float(np.median(frames / kept["off"] / np.array(ceilings[-ROUNDS:])))
    rates["capture_one/off"] = float(np.median(kept["off"] / kept["one"]))
    rates["capture_all/off"] = float(np.median(kept["off"] / kept["all"]))
    benchmark.extra_info.update({k: v for k, v in rates.items() if k.startswith("capture_")})
