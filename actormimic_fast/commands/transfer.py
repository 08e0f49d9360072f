"""`actormimic-fast transfer`: a DQN on a target game started from an AMN checkpoint (or at random).

Settings come from TransferConfig's defaults (the expert DQN's, i.e. the paper's), then the saved config of
the run being resumed (so --resume needs no --init), then --config FILE, then the command-line options.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..agents.transfer import TransferConfig
from .common import add_training_command, layered_settings, preflight, print_summary, usage_errors

NAME = "transfer"


def register(subparsers) -> None:
    add_training_command(
        subparsers, NAME, help="train a DQN on a target game from an AMN's weights (or random ones, the baseline)",
        description="Actor-Mimic transfer (paper section 3.4): drop the AMN's softmax and feature-regression "
                    "heads, keep its trunk and (--output masked, the paper's) its output rows of the target "
                    "game's legal actions, then train with the expert DQN procedure. --init random is the "
                    "baseline. Writes <out>/checkpoint.pt, run.json, progress.csv, episodes.csv, test.csv and tb/.",
        settings_cls=TransferConfig,
        settings_title="transfer and training settings (defaults: the paper's; counts accept 10M, 250k)", run=run)

def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ..agents.dqn import train_expert
    from ..agents.transfer import transfer_start

    with usage_errors(parser):
        cfg, initial_online, run_info = transfer_start(layered_settings(args, TransferConfig))
        preflight(cfg, args.resume, {Path(cfg.out): {"kind": "expert", "game": cfg.game,
                                                     "architecture": cfg.architecture, "run": run_info}})
    summary = train_expert(cfg, resume=args.resume, initial_online=initial_online, run_info=run_info)
    print_summary(summary, game=cfg.game, init=run_info["init"])
    return 0
