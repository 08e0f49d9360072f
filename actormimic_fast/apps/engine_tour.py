"""A tour of the engine alone: step the paper's 8 games in one C++ pool, print frames/s, save the observations.

    python -m actormimic_fast.apps.engine_tour [--steps 2000] [--envs-per-game 2] [--out demo_out]

Writes OUT/observations.png: one row per game, its 4 stacked 84x84 frames (oldest first).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from ..native.pool import MultiGameEnvPool
from ..native.games import PAPER_MULTITASK_GAMES


def observation_grid(obs: np.ndarray, scale: int = 2) -> np.ndarray:
    """[games, stack, 84, 84] uint8 -> one image, a row per game, a 2-pixel gap between frames."""
    games, stack, h, w = obs.shape
    gap = 2
    grid = np.full((games * (h + gap) - gap, stack * (w + gap) - gap), 255, np.uint8)
    for g in range(games):
        for s in range(stack):
            grid[g * (h + gap):g * (h + gap) + h, s * (w + gap):s * (w + gap) + w] = obs[g, s]
    return grid.repeat(scale, 0).repeat(scale, 1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000, help="agent steps per env (default 2000)")
    parser.add_argument("--envs-per-game", type=int, default=2, help="envs of each game (default 2)")
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default demo_out)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")

    games = PAPER_MULTITASK_GAMES
    print(f"Stepping {len(games)} games x {args.envs_per_game} envs for {args.steps} agent steps each "
          f"in one C++ pool (random legal actions), about {args.steps * len(games) * args.envs_per_game * 4 // 20000 + 1} s.")
    with MultiGameEnvPool(games, envs_per_game=args.envs_per_game, seed=args.seed) as pool:
        rng = np.random.default_rng(args.seed)
        legal = [np.flatnonzero(m) for m in pool.env_action_masks]
        actions = np.stack([rng.choice(l, size=args.steps) for l in legal], axis=1)
        out = pool.reset()
        episodes, start = 0, time.perf_counter()
        for t in range(args.steps):
            out = pool.step(actions[t])
            episodes += int(out.done.sum())
            if (t + 1) % max(1, args.steps // 10) == 0:
                rate = (t + 1) * pool.num_envs * 4 / (time.perf_counter() - start)
                print(f"  step {t + 1:>6}/{args.steps}: {rate:,.0f} frames/s")
        seconds = time.perf_counter() - start
        frames = args.steps * pool.num_envs * 4
        print(f"{frames:,} emulator frames in {seconds:.1f} s: {frames / seconds:,.0f} frames/s on "
              f"{pool.num_threads} threads; {episodes} episodes ended")
        first_env_of_game = np.arange(len(games)) * args.envs_per_game
        grid = observation_grid(out.obs[first_env_of_game])

    from PIL import Image

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "observations.png"
    Image.fromarray(grid).save(path)
    print(f"Wrote {path}: one row per game ({', '.join(games)}), 4 stacked frames each.")


if __name__ == "__main__":
    main()
