"""`actormimic-fast play`: one multitask network (AMN, MDQN, MCDQN) or a set of experts plays every game it
knows at once, in one pool, and the games are written side by side to a grid video."""

from __future__ import annotations

import argparse
import json

from ..files.json_values import jsonable
from ..run.counts import parse_count
from .common import add_video_options, check_video_options

NAME = "play"


def register(subparsers) -> None:
    play = subparsers.add_parser(
        "play", help="watch a network play all its games at once: a grid video, one tile per game",
        description="Play every game of an AMN (distill), MDQN/MCDQN (train-multitask-dqn) or of a set of expert "
                    "checkpoints (train-expert, one per game) at once in one pool, epsilon-greedy over each game's "
                    "legal actions, and write a grid video: one tile per game (the emulator's colour screen after "
                    "every agent step) captioned with the game and its running episode score. Episodes restart "
                    "automatically. Prints the episodes completed per game as JSON.")
    play.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT",
                      help="one AMN / MDQN / MCDQN checkpoint.pt, or expert checkpoints (one per game)")
    play.add_argument("--record", required=True, metavar="VIDEO.gif|.mp4", help="the grid video to write")
    play.add_argument("--frames", default="2k",
                      help="emulator frames per game to play (4 per agent step; default: 2k, 500 video frames)")
    play.add_argument("--epsilon", type=float, default=0.05, help="random-action probability (default: 0.05)")
    play.add_argument("--seed", type=int, default=12345, help="env and exploration seed (default: 12345)")
    play.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    add_video_options(play, scale=1)
    play.set_defaults(run=run)


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ..play.policies import check_pool_matches, load_policy
    from ..native.pool import MultiGameEnvPool
    from ..run.evaluation import evaluate
    from ..play.video import PoolVideo, check_video_path

    pool = None
    try:
        frames = parse_count(args.frames, "--frames")
        if frames < 1:
            raise ValueError(f"--frames must be >= 1, got {args.frames!r}")
        if not 0 <= args.epsilon <= 1:
            raise ValueError(f"--epsilon must be in [0, 1], got {args.epsilon}")
        check_video_options(args)
        check_video_path(args.record, "--record")
        policy = load_policy(args.checkpoints, device=args.device)
        pool = MultiGameEnvPool(list(policy.games), seed=args.seed)
        check_pool_matches(policy, pool.action_masks)
        video = PoolVideo(pool, range(pool.num_envs), args.record, view=args.view, fps=args.fps,
                          scale=args.scale, every=args.every, name="--record")
    except (ValueError, FileNotFoundError) as exc:
        if pool is not None:
            pool.close()
        parser.error(str(exc))
    try:
        # Every game steps on every pool step, so each video frame shows all games at the same step.
        result = evaluate(policy.act, pool=pool, frames_per_game=frames, epsilon=args.epsilon, seed=args.seed,
                          on_frame=lambda obs, done: video.add_step())
        video_frames = video.close()
    finally:
        pool.close()
    print(json.dumps({"kind": policy.kind, "games": list(policy.games), "video": str(args.record),
                      "video_frames": video_frames, "frames_per_game": frames,
                      "episodes": {g: {"episodes": r.episodes, "mean": jsonable(r.mean), "max": jsonable(r.max),
                                       "returns": r.returns, "partial_return": jsonable(r.partial_return)}
                                   for g, r in result.items()}}))
    return 0
