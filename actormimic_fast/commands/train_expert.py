"""`actormimic-fast train-expert`: one expert DQN, or several trained together (one per game).

Settings come from DQNConfig's defaults (the paper's), then the saved config of the run being resumed,
then --config FILE, then the options given on the command line.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..agents.dqn import DQNConfig
from .common import add_training_command, layered_settings, preflight, print_summary, usage_errors

NAME = "train-expert"


def register(subparsers) -> None:
    train = add_training_command(
        subparsers, NAME, help="train expert DQN(s): one game, or several together",
        description="Train an expert DQN (Mnih et al. 2015) on one game (--game). Writes <out>/checkpoint.pt, "
                    "progress.csv, episodes.csv, test.csv, run.json and tb/ (TensorBoard). With --games a,b,c "
                    "the experts train together in one process (one pool, one stacked update), each exactly as "
                    "it would alone, into <out>/<game>; under torchrun each process trains its share "
                    "games[RANK::WORLD_SIZE] together.",
        settings_cls=DQNConfig, settings_title="training settings (defaults: the paper's; counts accept 10M, 250k)",
        run=run)
    train.add_argument("--games", metavar="A,B,...", help="several games: one expert each, trained together, "
                                                          "in <out>/<game>")

def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ..agents.dqn import train_expert, train_experts
    from ..run.processes import device_for_process, games_for_process, process_info
    from ..native.games import canonical_name, rom_path
    from ..run.settings import game_names

    with usage_errors(parser):
        cfg = layered_settings(args, DQNConfig)
        games = None
        if args.games is not None:
            games = game_names(args.games)
            if not games:
                raise ValueError(f"--games must list games separated by commas, got {args.games!r}")
            if len(set(games)) != len(games):
                raise ValueError(f"--games must name distinct games, got {args.games!r}")
            for game in games:
                rom_path(game)  # unknown game -> ValueError listing the valid names
            info = process_info()
            games = games_for_process(games, info)
            # a resumed run's settings are in its games' folders (they are the same in every one)
            first = layered_settings(args, DQNConfig, fixed={"game": games[0], "out": str(Path(cfg.out) / games[0])})
            cfg = first.replace(out=cfg.out, device=device_for_process(cfg.device, info))
        else:
            rom_path(cfg.game)  # unknown game -> ValueError listing the valid names
        folders = {Path(cfg.out): cfg.game} if games is None else {Path(cfg.out) / g: g for g in games}
        preflight(cfg, args.resume, {folder: {"kind": "expert", "game": canonical_name(game),
                                              "architecture": cfg.architecture} for folder, game in folders.items()})
    if games is None:
        summaries = {cfg.game: train_expert(cfg, resume=args.resume)}
    else:
        summaries = train_experts(cfg, games, resume=args.resume)
    for game, summary in summaries.items():
        print_summary(summary, game=game)
    return 0
