"""`actormimic-fast train-expert`: one expert (DQN, or PQN with --algorithm pqn), or several trained together.

Settings come from the algorithm's config defaults (DQNConfig: the paper's; PQNConfig: PQN's), then the
saved config of the run being resumed, then --config FILE, then the options given on the command line.
An option that only the other algorithm has is refused.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..agents.dqn import DQNConfig
from ..agents.pqn import PQNConfig
from .common import (add_settings_options, add_training_command, layered_settings, preflight, print_summary,
                     usage_errors)

NAME = "train-expert"
ALGORITHMS = {"dqn": DQNConfig, "pqn": PQNConfig}


def register(subparsers) -> None:
    train = add_training_command(
        subparsers, NAME, help="train expert DQN(s) or PQN(s): one game, or several together",
        description="Train an expert on one game (--game): DQN (Mnih et al. 2015, the default and the paper's "
                    "preset) or PQN (--algorithm pqn, Gallici et al. 2024: many envs, Q(lambda) rollouts, no "
                    "replay, the fastest to a score on a CPU). Writes <out>/checkpoint.pt, progress.csv, "
                    "episodes.csv, test.csv, run.json and tb/ (TensorBoard). With --games a,b,c the experts train "
                    "together in one process (one pool, one update), each exactly as it would alone, into "
                    "<out>/<game>; under torchrun each process trains its share games[RANK::WORLD_SIZE] together.",
        settings_cls=DQNConfig, settings_title="training settings (defaults: DQN's, the paper's; counts accept 10M, "
                                               "250k)",
        run=run)
    train.add_argument("--algorithm", choices=tuple(ALGORITHMS), default=None,
                       help="dqn (the paper's experts) or pqn (its own defaults: 64 envs, RAdam, nature_ln, "
                            "epsilon to 0.01 over 10%% of frames; see docs/pqn.md). Default: dqn, or with --resume "
                            "the algorithm of the checkpoint in --out")
    add_settings_options(train, PQNConfig, "PQN settings (--algorithm pqn only)",
                         skip=tuple(DQNConfig.field_help()))
    train.add_argument("--games", metavar="A,B,...", help="several games: one expert each, trained together, "
                                                          "in <out>/<game>")


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ..agents.dqn import train_expert, train_experts
    from ..agents.pqn import train_pqn_expert, train_pqn_experts
    from ..run.processes import device_for_process, games_for_process, process_info
    from ..native.games import canonical_name, rom_path
    from ..run.settings import game_names

    with usage_errors(parser):
        if args.algorithm is None:
            args.algorithm = resumed_algorithm(args)
        settings_cls = ALGORITHMS[args.algorithm]
        own = settings_cls.field_help()
        every = {**DQNConfig.field_help(), **PQNConfig.field_help()}
        foreign = [name for name in vars(args) if name in every and name not in own]
        if foreign:
            options = ", ".join("--" + name.replace("_", "-") for name in foreign)
            raise ValueError(f"{options}: not a setting of --algorithm {args.algorithm}")
        cfg = layered_settings(args, settings_cls)
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
            first = layered_settings(args, settings_cls, fixed={"game": games[0], "out": str(Path(cfg.out) / games[0])})
            cfg = first.replace(out=cfg.out, device=device_for_process(cfg.device, info))
        else:
            rom_path(cfg.game)  # unknown game -> ValueError listing the valid names
        folders = {Path(cfg.out): cfg.game} if games is None else {Path(cfg.out) / g: g for g in games}
        preflight(cfg, args.resume, {folder: {"kind": "expert", "game": canonical_name(game),
                                              "architecture": cfg.architecture} for folder, game in folders.items()})
    one, several = (train_expert, train_experts) if args.algorithm == "dqn" else (train_pqn_expert, train_pqn_experts)
    if games is None:
        summaries = {cfg.game: one(cfg, resume=args.resume)}
    else:
        summaries = several(cfg, games, resume=args.resume)
    for game, summary in summaries.items():
        print_summary(summary, game=game)
    return 0


def resumed_algorithm(args: argparse.Namespace) -> str:
    """The algorithm of the run --resume continues (its checkpoint's meta["run"]), else dqn."""
    from ..files.checkpoint import CHECKPOINT_NAME, load_checkpoint
    from ..run.settings import game_names

    if not args.resume:
        return "dqn"
    out = Path(getattr(args, "out", DQNConfig.out))
    games = game_names(args.games) if args.games else []
    checkpoint = (out / games[0] if games else out) / CHECKPOINT_NAME
    if not checkpoint.exists():
        return "dqn"
    return load_checkpoint(checkpoint, mmap=True)["meta"].get("run", {}).get("algorithm", "dqn")
