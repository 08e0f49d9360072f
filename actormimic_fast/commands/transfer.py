"""`actormimic-fast transfer`: a DQN on a target game started from an AMN checkpoint (or at random).

Settings come from TransferConfig's defaults (the expert DQN's, i.e. the paper's), then the saved config of
the run being resumed (so --resume needs no --init), then --config FILE, then the command-line options.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import TransferConfig
from .common import add_settings_options, jsonable

NAME = "transfer"


def register(subparsers) -> None:
    transfer = subparsers.add_parser(
        "transfer", help="train a DQN on a target game from an AMN's weights (or random ones, the baseline)",
        description="Actor-Mimic transfer (paper section 3.4): drop the AMN's softmax and feature-regression "
                    "heads, keep its trunk and (--output masked, the paper's) its output rows of the target "
                    "game's legal actions, then train with the expert DQN procedure. --init random is the "
                    "baseline. Writes <out>/checkpoint.pt, run.json, progress.csv, episodes.csv, test.csv and tb/.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    transfer.add_argument("--config", metavar="FILE.toml", help="TOML file of settings (top level or a [transfer] "
                                                                    "table); command-line options override it")
    transfer.add_argument("--resume", action="store_true",
                          help="continue from <out>/checkpoint.pt when it exists (else start fresh)")
    add_settings_options(transfer, TransferConfig,
                         "transfer and training settings (defaults: the paper's; counts accept 10M, 250k)")
    transfer.set_defaults(run=run)


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ..agents.dqn import CHECKPOINT_NAME, train_expert
    from ..agents.transfer import transfer_start
    from ..checkpoint import load_checkpoint

    overrides = {k: v for k, v in vars(args).items() if k not in {"command", "config", "resume", "run"}}
    try:
        values = dict(TransferConfig.toml_values(args.config)) if args.config else {}
        values.update(overrides)
        out = Path(str(values.get("out", TransferConfig.field_help()["out"]["default"])))
        saved = {}
        if args.resume and (out / CHECKPOINT_NAME).exists():
            saved = load_checkpoint(out / CHECKPOINT_NAME)["config"]   # the run's own settings come first
        cfg, initial_online, run_info = transfer_start(TransferConfig.from_dict({**saved, **values}))
    except (ValueError, FileNotFoundError) as exc:
        parser.error(str(exc))
    summary = train_expert(cfg, resume=args.resume, initial_online=initial_online, run_info=run_info)
    print(json.dumps({"game": cfg.game, "init": run_info["init"], **{k: jsonable(v) for k, v in summary.items()}}),
          flush=True)
    return 0
