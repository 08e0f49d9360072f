"""The `actormimic-fast` command line.

    actormimic-fast train-expert --game pong --frames 10M --out runs/pong
    actormimic-fast train-expert --config pong.toml --double-dqn --resume
    torchrun --nproc-per-node 8 -m actormimic_fast.cli train-expert --games pong,boxing,... --out runs
    actormimic-fast evaluate runs/pong/checkpoint.pt --episodes 10 --record pong.gif

Settings come from DQNConfig's defaults (the paper's), then the saved config of the run being resumed,
then --config FILE, then the options given on the command line.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from .config import DQNConfig
from .sizes import format_count, parse_count


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training settings (defaults: the paper's; counts accept 10M, 250k)")
    for name, info in DQNConfig.field_help().items():
        flag = "--" + name.replace("_", "-")
        default = info["default"]
        shown = format_count(default) if info["count"] else default
        help_text = f"{info['help']} (default: {shown})"
        if info["type"] == "bool":
            group.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                               help=help_text)
        else:
            group.add_argument(flag, dest=name, default=argparse.SUPPRESS, choices=info["choices"],
                               metavar=None if info["choices"] else info["type"].upper(), help=help_text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="actormimic-fast", description="Actor-Mimic on a fast C++ Atari core.")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser(
        "train-expert", help="train expert DQN(s), one game per process under torchrun",
        description="Train an expert DQN (Mnih et al. 2015) on one game. Writes <out>/checkpoint.pt, "
                    "progress.csv, episodes.csv, test.csv and tb/ (TensorBoard). With --games a,b,c each game "
                    "goes to <out>/<game>; under torchrun each process trains games[RANK::WORLD_SIZE].",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    train.add_argument("--config", metavar="FILE.toml", help="TOML file of settings (top level or an [expert] "
                                                                 "table); command-line options override it")
    train.add_argument("--games", metavar="A,B,...", help="several games: one expert each, in <out>/<game>")
    train.add_argument("--resume", action="store_true",
                       help="continue from <out>/checkpoint.pt when it exists (else start fresh)")
    _add_config_options(train)

    ev = commands.add_parser("evaluate", help="play a checkpoint's expert and print its episode rewards",
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
    return parser


# -- train-expert ----------------------------------------------------------------------------------------
def _config_values(args: argparse.Namespace) -> dict:
    skip = {"command", "config", "games", "resume"}
    return {k: v for k, v in vars(args).items() if k not in skip}


def _train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .agents.dqn import CHECKPOINT_NAME, train_expert
    from .checkpoint import load_checkpoint
    from .distributed import device_for_process, games_for_process, process_info
    from .games import canonical_name, rom_path

    overrides = _config_values(args)
    try:
        base = DQNConfig.from_toml(args.config, overrides)
        if args.games:
            games = [canonical_name(g) for g in args.games.split(",") if g.strip()]
            if not games:
                raise ValueError(f"--games must list games separated by commas, got {args.games!r}")
            for g in games:
                rom_path(g)  # unknown game -> ValueError listing the valid names
            info = process_info()
            device = device_for_process(base.device, info)
            runs = [(str(Path(base.out) / g), {"game": g, "device": device})
                    for g in games_for_process(games, info)]
        else:
            runs = [(base.out, {})]
        configs = []
        for out, fixed in runs:
            values = {}
            ckpt = Path(out) / CHECKPOINT_NAME
            if args.resume and ckpt.exists():
                values.update(load_checkpoint(ckpt)["config"])  # the run's own settings come first
            if args.config:
                values.update(_toml_values(args.config))
            values.update(overrides)
            values.update(fixed, out=out)
            cfg = DQNConfig.from_dict(values)
            rom_path(cfg.game)  # unknown game -> ValueError listing the valid names
            configs.append(cfg)
    except (ValueError, FileNotFoundError) as exc:
        parser.error(str(exc))
    for cfg in configs:
        summary = train_expert(cfg, resume=args.resume)
        print(json.dumps({"game": cfg.game, **{k: _jsonable(v) for k, v in summary.items()}}), flush=True)
    return 0


def _toml_values(path: str) -> dict:
    import tomllib

    data = tomllib.loads(Path(path).read_text())
    return dict(data.get("expert", data))


def _jsonable(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


# -- evaluate --------------------------------------------------------------------------------------------
def _evaluate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .agents.dqn import load_expert
    from .evaluation import evaluate, greedy_act

    try:
        episodes = parse_count(args.episodes, "--episodes")
        if episodes < 1:
            raise ValueError(f"--episodes must be >= 1, got {args.episodes!r}")
        max_frames = None if args.max_frames is None else parse_count(args.max_frames, "--max-frames")
        if args.envs < 1:
            raise ValueError(f"--envs must be >= 1, got {args.envs}")
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
    print(json.dumps({"game": r.game, "episodes": r.episodes, "mean": _jsonable(r.mean), "max": _jsonable(r.max),
                      "frames": r.frames, "returns": r.returns, "partial_return": _jsonable(r.partial_return)}))
    return 0


def write_video(path: str | Path, frames: list, scale: int = 3, fps: int = 15) -> None:
    """84x84 grayscale frames to a GIF (Pillow) or an MP4 (OpenCV, if installed)."""
    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not frames:
        raise ValueError("no frames to record")
    big = [np.kron(f, np.ones((scale, scale), np.uint8)) for f in frames]
    if path.suffix.lower() == ".gif":
        from PIL import Image

        images = [Image.fromarray(f) for f in big]
        images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
        return
    try:
        import cv2
    except ImportError:
        raise ValueError("--record to .mp4 needs opencv-python-headless (pip install opencv-python-headless); "
                         "use a .gif instead") from None
    h, w = big[0].shape
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h), isColor=False)
    for f in big:
        writer.write(f)
    writer.release()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    sub = parser._subparsers._group_actions[0].choices[args.command]
    if args.command == "train-expert":
        return _train(args, sub)
    return _evaluate(args, sub)


if __name__ == "__main__":
    sys.exit(main())
