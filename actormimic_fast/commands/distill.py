"""`actormimic-fast distill`: train one Actor-Mimic Network from one expert checkpoint per game.

Settings come from DistillConfig's defaults (the paper's), then the saved config of the run being resumed,
then --config FILE, then the options given on the command line. Under torchrun every process runs the
same command (DistributedDataParallel; process 0 writes the files).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..agents.distill import DistillConfig
from .common import add_training_command, layered_settings, preflight, print_summary, usage_errors

NAME = "distill"


def register(subparsers) -> None:
    add_training_command(
        subparsers, NAME, help="train an Actor-Mimic Network (AMN) from expert checkpoints",
        description="Actor-Mimic multitask distillation (Parisotto et al. 2016): one 18-output network learns "
                    "every expert's policy (and, with --beta > 0, its features). Writes <out>/checkpoint.pt, "
                    "progress.csv, episodes.csv, test.csv, run.json and tb/. Runs under torchrun as DDP.",
        settings_cls=DistillConfig,
        settings_title="distillation settings (defaults: the paper's; counts accept 4M, 250k; frame counts are per game)",
        run=run)

def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ..agents.distill import distill, load_experts
    from ..run.processes import process_info

    with usage_errors(parser):
        cfg = layered_settings(args, DistillConfig)
        experts = load_experts(cfg.expert_paths, cfg.game_list)   # a bad expert list is a usage error
        check_expert_actions(experts)
        preflight(cfg, args.resume, {Path(cfg.out): {"kind": "amn", "games": experts.games,
                                                     "architecture": cfg.architecture, "beta": float(cfg.beta)}})
    summary = distill(cfg, resume=args.resume, experts=experts)
    if process_info().rank == 0:
        print_summary({k: v for k, v in summary.items() if k not in ("amn", "feature_heads")})
    return 0


def check_expert_actions(experts) -> None:
    """ValueError naming the file unless each expert plays its game's legal action set, in the pool's order
    (what distill() would find only after its envs started)."""
    from ..agents.transfer import minimal_action_set

    for path, game, meta in zip(experts.paths, experts.games, experts.metas):
        legal = [int(a) for a in minimal_action_set(game)]
        actions = meta.get("actions")
        if actions != legal:
            raise ValueError(f"--experts: {str(path)!r} is an expert for {game} playing actions {actions}, but "
                             f"{game}'s legal actions are {legal}: it was not trained on this game's action set")
