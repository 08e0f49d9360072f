"""`actormimic-fast ship-amn`: a finished distillation run -> a shipped-AMN folder (16-bit weights, provenance,
the check that it acts like its experts; agents/amn_shipping.py)."""

from __future__ import annotations

import argparse

from .common import run_ship

NAME = "ship-amn"


def register(subparsers) -> None:
    ship = subparsers.add_parser(
        "ship-amn", help="turn a distillation run into a small folder to commit beside the experts (16-bit weights)",
        description="Read a distillation run folder (distill: checkpoint.pt, run.json, test.csv, progress.csv) and "
                    "write OUT/amn.pt (the AMN's weights in 16 bits, loadable wherever an AMN checkpoint is), "
                    "OUT/test.csv and OUT/progress.csv (so `report` reads OUT as the run) and OUT/run.json: the "
                    "run's segments and a 'shipped' record with the settings, frames, wall time, each game's test "
                    "summary, the experts distilled (path, SHA-256, score), how closely the 16-bit AMN acts like "
                    "the float32 one, and per game the share of its expert's states where the AMN picks the "
                    "expert's action, which tests/test_shipped_amn.py replays. Prints the record as JSON.")
    ship.add_argument("run_folder", metavar="RUN_DIR", help="the distillation run folder (e.g. ~/runs/amn)")
    ship.add_argument("--out", required=True, help="the shipped-AMN folder to write (e.g. experts/amn)")
    ship.add_argument("--dtype", choices=("float16", "bfloat16"), default="float16",
                      help="the weights' 16-bit type (default: float16)")
    ship.add_argument("--check-frames", default="4k",
                      help="emulator frames per game of the experts' check game (default: 4k, 1,000 states)")
    ship.add_argument("--fidelity-frames", default="4k",
                      help="emulator frames per game played to compare the 16-bit AMN with the float32 one "
                           "(default: 4k)")
    ship.add_argument("--note", help="free text for the record")
    ship.set_defaults(run=run)


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ..agents.amn_shipping import ship_amn

    return run_ship(args, parser, ship_amn)
