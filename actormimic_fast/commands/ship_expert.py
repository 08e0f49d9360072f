"""`actormimic-fast ship-expert`: a finished expert run -> a shipped-expert folder (16-bit weights, provenance,
the checks that it plays; agents/shipping.py)."""

from __future__ import annotations

import argparse

from .common import run_ship

NAME = "ship-expert"


def register(subparsers) -> None:
    ship = subparsers.add_parser(
        "ship-expert", help="turn an expert run into a small folder to commit and share (16-bit weights, provenance)",
        description="Read an expert run folder (train-expert: checkpoint.pt, run.json, test.csv, progress.csv) and "
                    "write OUT/expert.pt (the network's weights in 16 bits, loadable wherever an expert checkpoint "
                    "is), OUT/test.csv and OUT/progress.csv (so `report` reads OUT as a run) and OUT/run.json: the "
                    "run's training segments (command, commit, machine, date) and a 'shipped' record with the "
                    "settings, frames, wall time, the test score, random play on the test protocol, how closely "
                    "the 16-bit network acts like the float32 one, and a short greedy game against random play "
                    "that tests/test_shipped_experts.py replays. Prints the 'shipped' record as JSON.")
    ship.add_argument("run_folder", metavar="RUN_DIR", help="the expert run folder (e.g. ~/runs/pong)")
    ship.add_argument("--out", required=True, help="the shipped-expert folder to write (e.g. experts/table1/pong)")
    ship.add_argument("--dtype", choices=("float16", "bfloat16"), default="float16",
                      help="the weights' 16-bit type (default: float16: 3 more mantissa bits than bfloat16)")
    ship.add_argument("--check-frames", default="2k",
                      help="emulator frames of the greedy check game (default: 2k, 500 agent steps)")
    ship.add_argument("--fidelity-frames", default="20k",
                      help="emulator frames played to compare the 16-bit network's actions with the float32 one's "
                           "(default: 20k, 5,000 states)")
    ship.add_argument("--note", help="free text for the record (e.g. what the run's segments did not record)")
    ship.set_defaults(run=run)


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ..agents.shipping import ship_expert

    return run_ship(args, parser, ship_expert)
