"""A/B of two builds of the extension (_C .so files) on the pool's synchronous step: the 8-game mix, one env per
game, random legal actions, no screen capture. Two builds cannot share one process (pybind11 registers each type
once), so each measurement is its own process, the two builds alternating round by round (order swapped every
round) so that machine drift hits both alike; prints each build's median frames/s and the median per-round ratio,
by wall-clock time and by CPU time (all the process's threads: the pool's workers block rather than spin when
idle, so CPU time counts the work done per frame and is far less disturbed by other processes on a busy machine).

    python benchmarks/ab_pool_step.py OLD.so NEW.so [--rounds 8] [--steps 400]
    python benchmarks/ab_pool_step.py OLD.so NEW.so --instructions [--steps 200]   # valgrind's callgrind

--instructions counts the instructions executed inside MultiGameEnvPool::step instead (one process per build,
num_threads=1 so the caller's thread steps every env): deterministic for the same seed and actions, so it shows
small differences that timings on a shared machine cannot (a few minutes per build under valgrind).

Each build runs with this checkout's Python package and its .so swapped in (a copy in a temporary folder), so the
Python side is the same for both.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

STEP_SYMBOL = "actormimic_fast::env::MultiGameEnvPool::step(long const*)"
MEASURE = """
import time, numpy as np
from actormimic_fast import PAPER_MULTITASK_GAMES, MultiGameEnvPool
steps = {steps}
with MultiGameEnvPool(PAPER_MULTITASK_GAMES, seed=0, num_threads={threads}) as pool:
    rng = np.random.default_rng(0)
    actions = np.stack([rng.choice(np.flatnonzero(m), size=steps) for m in pool.env_action_masks], axis=1)
    pool.reset()
    for a in actions[:50]:
        pool.step(a)
    pool.reset()
    start, start_cpu = time.perf_counter(), time.process_time()
    for a in actions:
        pool.step(a)
    frames = steps * pool.num_envs * 4
    print(frames / (time.perf_counter() - start), frames / (time.process_time() - start_cpu))
"""


def package_with(so: Path, folder: Path) -> Path:
    """A copy of actormimic_fast/ with `so` as its extension; returns the folder to put on PYTHONPATH."""
    target = folder / "actormimic_fast"
    shutil.copytree(ROOT / "actormimic_fast", target, ignore=shutil.ignore_patterns("_C*.so", "__pycache__"))
    shutil.copy2(so, target / ("_C" + importlib.machinery.EXTENSION_SUFFIXES[0]))
    return folder


def instructions(path: Path, steps: int, tmp: Path) -> int:
    """Instructions executed inside MultiGameEnvPool::step over `steps` steps, counted by callgrind."""
    out_file = tmp / f"callgrind.{path.name}"
    proc = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}", "--collect-atstart=no",
                           f"--toggle-collect={STEP_SYMBOL}", sys.executable, "-c",
                           MEASURE.format(steps=steps, threads=1)],
                          env=dict(os.environ, PYTHONPATH=str(path)), cwd=tmp, capture_output=True, text=True,
                          check=True)
    for line in proc.stderr.splitlines():
        if "Collected :" in line:
            return int(line.split(":")[-1].strip())
    raise RuntimeError(f"callgrind printed no instruction count:\n{proc.stderr[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("builds", nargs=2, type=Path, metavar="SO", help="the two extension builds (A, then B)")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=400, help="agent steps per measurement")
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions in MultiGameEnvPool::step with valgrind's callgrind instead of timing")
    args = parser.parse_args()
    for so in args.builds:
        if not so.is_file():
            parser.error(f"build {str(so)!r} does not exist")
    with tempfile.TemporaryDirectory() as tmp:
        paths = [package_with(so.resolve(), Path(tmp) / f"build{i}") for i, so in enumerate(args.builds)]
        if args.instructions:
            counts = [instructions(path, args.steps, Path(tmp)) for path in paths]
            env_steps = (min(50, args.steps) + args.steps) * 8     # the warm-up steps are counted too
            for name, count in zip("AB", counts):
                print(f"{name}: {count:,} instructions in MultiGameEnvPool::step ({count / env_steps:,.0f} per env step)")
            print(f"B - A: {counts[1] - counts[0]:+,} instructions ({(counts[1] - counts[0]) / env_steps:+.1f} per env "
                  f"step, {100 * (counts[1] / counts[0] - 1):+.5f}%)")
            return
        rates: dict[str, list[list[float]]] = {"wall": [[], []], "cpu": [[], []]}
        for r in range(args.rounds):
            for i in ((0, 1) if r % 2 == 0 else (1, 0)):
                env = dict(os.environ, PYTHONPATH=str(paths[i]))
                out = subprocess.run([sys.executable, "-c", MEASURE.format(steps=args.steps, threads=os.cpu_count())],
                                     env=env, cwd=tmp,
                                     capture_output=True, text=True, check=True)
                wall, cpu = map(float, out.stdout.strip().splitlines()[-1].split())
                rates["wall"][i].append(wall)
                rates["cpu"][i].append(cpu)
            print(f"round {r + 1}: wall A {rates['wall'][0][-1]:,.0f} B {rates['wall'][1][-1]:,.0f}, "
                  f"cpu A {rates['cpu'][0][-1]:,.0f} B {rates['cpu'][1][-1]:,.0f} frames/s", flush=True)
    for metric, (a, b) in rates.items():
        ratios = [y / x for x, y in zip(a, b)]
        print(f"{metric:>4}: A {statistics.median(a):,.0f} frames/s, B {statistics.median(b):,.0f} frames/s, "
              f"B / A median of per-round ratios {statistics.median(ratios):.3f} "
              f"(min {min(ratios):.3f}, max {max(ratios):.3f})")


if __name__ == "__main__":
    main()
