"""`actormimic-fast train-expert`: one expert DQN per game (one game per process under torchrun).

Settings come from DQNConfig's defaults (the paper's), then the saved config of the run being resumed,
then --config FILE, then the options given on the command line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..agents.dqn import DQNConfig
from .common import add_run_options, jsonable, layered_settings

NAME = "train-expert"


def register(subparsers) -> None:
    train = subparsers.add_parser(
        "train-expert", help="train expert DQN(s), one game per process under torchrun",
        description="Train an expert DQN (Mnih et al. 2015) on one game. Writes <out>/checkpoint.pt, "
                    "progress.csv, episodes.csv, test.csv and tb/ (TensorBoard). With --games a,b,c each game "
                    "goes to <out>/<game>; under torchrun each process trains games[RANK::WORLD_SIZE].",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    train.add_argument("--games", metavar="A,B,...", help="several games: one expert each, in <out>/<game>")
    add_run_options(train, DQNConfig, "training settings (defaults: the paper's; counts accept 10M, 250k)")
    train.set_defaults(run=run)


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ..agents.dqn import train_expert
    from ..distributed import device_for_process, games_for_process, process_info
    from ..games import canonical_name, rom_path

    try:
        base = layered_settings(args, DQNConfig)
        if args.games:
            games = [canonical_name(g) for g in args.games.split(",") if g.strip()]
            if not games:
                raise ValueError(f"--games must list games separated by commas, got {args.games!r}")
            for g in games:
                rom_path(g)  # unknown game -> ValueError listing the valid names
            info = process_info()
            device = device_for_process(base.device, info)
            configs = [layered_settings(args, DQNConfig, fixed={"game": g, "device": device,
                                                               "out": str(Path(base.out) / g)})
                       for g in games_for_process(games, info)]
        else:
            configs = [base]
        for cfg in configs:
            rom_path(cfg.game)  # unknown game -> ValueError listing the valid names
    except (ValueError, FileNotFoundError) as exc:
        parser.error(str(exc))
    for cfg in configs:
        summary = train_expert(cfg, resume=args.resume)
        print(json.dumps({"game": cfg.game, **{k: jsonable(v) for k, v in summary.items()}}), flush=True)
    return 0
