"""The `actormimic-fast` command line: one subcommand per module in actormimic_fast/commands/.

    actormimic-fast train-expert --game pong --frames 10M --out runs/pong
    actormimic-fast train-expert --config pong.toml --double-dqn --resume
    torchrun --nproc-per-node 8 -m actormimic_fast.cli train-expert --games pong,boxing,... --out runs
    actormimic-fast evaluate runs/pong/checkpoint.pt --episodes 10 --record pong.gif
"""

from __future__ import annotations

import argparse
import sys

from .commands import COMMANDS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="actormimic-fast", description="Actor-Mimic on a fast C++ Atari core.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    sub = parser._subparsers._group_actions[0].choices[args.command]   # errors print the command's usage
    from .run.loop import TrainingDiverged

    try:
        return args.run(args, sub)
    except TrainingDiverged as exc:
        print(f"actormimic-fast {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
