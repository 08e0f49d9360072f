"""`actormimic-fast train-multitask-dqn`: the MDQN / MCDQN baselines (appendix C), one network for all games.

Settings come from MultitaskDQNConfig's defaults (the expert DQN's), then the saved config of the run being
resumed, then --config FILE, then the options given on the command line.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..agents.multitask_dqn import MultitaskDQNConfig
from .common import add_training_command, layered_settings, preflight, print_summary, usage_errors

NAME = "train-multitask-dqn"


def register(subparsers) -> None:
    add_training_command(
        subparsers, NAME, help="train a multitask DQN baseline (MDQN or MCDQN) on several games at once",
        description="Train one DQN on all --games at once with Q-learning (Actor-Mimic appendix C): "
                    "--variant mdqn shares everything and one 18-action output, mcdqn shares the convolutions "
                    "and gives each game its own fc 512 + output. Illegal actions are masked in acting and in "
                    "the bootstrap. Frame counts are per game. Writes <out>/checkpoint.pt, progress.csv, "
                    "episodes.csv, test.csv (one row per game and test epoch), run.json and tb/.",
        settings_cls=MultitaskDQNConfig,
        settings_title="training settings (defaults: the expert DQN's, frames per game; counts accept 4M, 250k)",
        run=run)

def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ..agents.multitask_dqn import train_multitask_dqn
    from ..native.games import rom_path

    with usage_errors(parser):
        cfg = layered_settings(args, MultitaskDQNConfig)
        for game in cfg.game_list:
            rom_path(game)   # unknown game -> ValueError listing the valid names
        preflight(cfg, args.resume, {Path(cfg.out): {"kind": cfg.variant, "games": cfg.game_list,
                                                     "architecture": "nature"}})
    summary = train_multitask_dqn(cfg, resume=args.resume)
    print_summary(summary, variant=cfg.variant, games=cfg.game_list)
    return 0
