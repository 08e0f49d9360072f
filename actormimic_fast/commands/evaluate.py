"""`actormimic-fast evaluate`: play an expert checkpoint with the paper's test protocol."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..files.json_values import jsonable
from ..run.counts import parse_count
from .common import add_video_options, check_video_options, writable_folder

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
    ev.add_argument("--record", metavar="VIDEO.gif|.mp4",
                    help="write env 0's first episode to a GIF or MP4: one video frame per agent step, the "
                         "emulator's 210x160 colour screen after the step's last frame (--view observation: the "
                         "agent's 84x84 frame), captioned with the game and the running score")
    add_video_options(ev, scale=2)
    ev.set_defaults(run=run)


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ..agents.dqn import load_expert
    from ..native.pool import MultiGameEnvPool
    from ..run.evaluation import evaluate, greedy_act
    from ..run.context import resolve_device
    from ..play.video import PoolVideo, check_video_path

    pool = video = None
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
        check_video_options(args)
        if args.record:
            check_video_path(args.record, "--record")
            writable_folder(Path(args.record).parent, "--record")   # made now, not at the episode's first frame
        network, meta = load_expert(args.checkpoint, device=args.device)
        # The pool evaluate() would build (same seed and settings), built here so the video can watch env 0.
        pool = MultiGameEnvPool([meta["game"]], envs_per_game=args.envs, seed=args.seed)
        if args.record:
            video = PoolVideo(pool, [0], args.record, view=args.view, fps=args.fps, scale=args.scale,
                              every=args.every, name="--record")
    except (ValueError, FileNotFoundError) as exc:
        if pool is not None:
            pool.close()
        parser.error(str(exc))

    def on_frame(obs, done):
        if not video.closed:
            video.add_step()
            if done[0]:
                video.close()

    try:
        result = evaluate(greedy_act(network, meta["actions"], args.device), pool=pool,
                          episodes_per_game=episodes, max_frames_per_game=max_frames, epsilon=args.epsilon,
                          seed=args.seed, on_frame=on_frame if video else None)
        if video:
            video.close()
    finally:
        pool.close()
    r = result[meta["game"]]
    print(json.dumps({"game": r.game, "episodes": r.episodes, "mean": jsonable(r.mean), "max": jsonable(r.max),
                      "frames": r.frames, "returns": r.returns, "partial_return": jsonable(r.partial_return),
                      **({"video": str(args.record), "video_frames": video.writer.frames} if video else {})}))
    return 0
