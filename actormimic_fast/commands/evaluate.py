"""`actormimic-fast evaluate`: play an expert checkpoint with the paper's test protocol."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..sizes import parse_count
from ..video import write_video
from .common import jsonable

NAME = "evaluate"


def register(subparsers) -> None:
    ev = subparsers.add_parser("evaluate", help="play a checkpoint's expert and print its episode rewards",
                             description="Evaluate an expert checkpoint with the paper's protocol: full games, "
                                         "up to 30 random no-ops, epsilon-greedy.")
    ev.add_argument("checkpoint", help="path of a checkpoint.pt written by train-expert")
    ev.add_argument("--episodes", default="10", help="episodes to complete (default: 10)")
    ev.add_argument("--max-frames", default=None, help="stop after this many emulator frames even if episodes "
                                                       "are short (default: no limit)")
    ev.add_argument("--epsilon", type=float, default=0.05, help="random-action probability (default: 0.05)")
    ev.add_argument("--envs", type=int, default=1, help="envs playing at once (default: 1)")
    ev.add_argument("--seed", type=int, default=12345, help="env and exploration seed (default: 12345)")
    ev.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    ev.add_argument("--record", metavar="VIDEO.gif|.mp4", help="write env 0's first episode (84x84 frames "
                                                               "as the agent sees them) to a GIF or MP4")
    ev.set_defaults(run=run)


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ..agents.dqn import load_expert
    from ..evaluation import evaluate, greedy_act
    from ..run.context import resolve_device

    try:
        episodes = parse_count(args.episodes, "--episodes")
        if episodes < 1:
            raise ValueError(f"--episodes must be >= 1, got {args.episodes!r}")
        max_frames = None if args.max_frames is None else parse_count(args.max_frames, "--max-frames")
        if args.envs < 1:
            raise ValueError(f"--envs must be >= 1, got {args.envs}")
        if not 0 <= args.epsilon <= 1:
            raise ValueError(f"--epsilon must be in [0, 1], got {args.epsilon}")
        try:
            resolve_device(args.device)
        except ValueError as exc:
            raise ValueError(f"--device: {exc}") from None
        if args.record and Path(args.record).suffix.lower() not in (".gif", ".mp4"):
            raise ValueError(f"--record must end in .gif or .mp4, got {args.record!r}")
        network, meta = load_expert(args.checkpoint, device=args.device)
    except (ValueError, FileNotFoundError) as exc:
        parser.error(str(exc))
    frames: list = []
    recording = [bool(args.record)]

    def on_frame(obs, done):
        if recording[0]:
            frames.append(obs[0, -1].copy())
            recording[0] = not bool(done[0])

    result = evaluate(greedy_act(network, meta["actions"], args.device), [meta["game"]],
                      episodes_per_game=episodes, max_frames_per_game=max_frames, epsilon=args.epsilon,
                      envs_per_game=args.envs, seed=args.seed, on_frame=on_frame if args.record else None)
    r = result[meta["game"]]
    if args.record:
        write_video(args.record, frames)
    print(json.dumps({"game": r.game, "episodes": r.episodes, "mean": jsonable(r.mean), "max": jsonable(r.max),
                      "frames": r.frames, "returns": r.returns, "partial_return": jsonable(r.partial_return)}))
    return 0
