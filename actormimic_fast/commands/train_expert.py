"""`actormimic-fast train-expert`: one expert DQN per game (one game per process under torchrun).

Settings come from DQNConfig's defaults (the paper's), then the saved config of the run being resumed,
then --config FILE, then the options given on the command line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import DQNConfig
from .common import add_settings_options, jsonable

NAME = "train-expert"


def register(subparsers) -> None:
    train = subparsers.add_parser(
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
    add_settings_options(train, DQNConfig, "training settings (defaults: the paper's; counts accept 10M, 250k)")
    train.set_defaults(run=run)


def _config_values(args: argparse.Namespace) -> dict:
    skip = {"command", "config", "games", "resume", "run"}
    return {k: v for k, v in vars(args).items() if k not in skip}


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ..agents.dqn import CHECKPOINT_NAME, train_expert
    from ..checkpoint import load_checkpoint
    from ..distributed import device_for_process, games_for_process, process_info
    from ..games import canonical_name, rom_path

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
                values.update(DQNConfig.toml_values(args.config))
            values.update(overrides)
            values.update(fixed, out=out)
            cfg = DQNConfig.from_dict(values)
            rom_path(cfg.game)  # unknown game -> ValueError listing the valid names
            configs.append(cfg)
    except (ValueError, FileNotFoundError) as exc:
        parser.error(str(exc))
    for cfg in configs:
        summary = train_expert(cfg, resume=args.resume)
        print(json.dumps({"game": cfg.game, **{k: jsonable(v) for k, v in summary.items()}}), flush=True)
    return 0
