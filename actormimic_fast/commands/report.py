"""`actormimic-fast report`: the paper's Table 1 / Table 2 and learning curves from run folders."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..run.counts import parse_count
from .common import usage_errors, writable_folder

NAME = "report"


def register(subparsers) -> None:
    report = subparsers.add_parser(
        "report", help="tables and learning curves from run folders (the paper's Table 1 and Table 2)",
        description="Read run folders (each with run.json and test.csv) and write the tables they support: "
                    "Table 1 (table1.md, table1.csv) when an AMN run is given, with expert, MDQN and MCDQN runs "
                    "as columns; Table 2 (table2.md, table2.csv) when transfer runs are given; and one learning-"
                    "curve PNG per game. The Markdown tables are also printed.")
    report.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders (e.g. runs/*)")
    report.add_argument("--out", default="report", help="folder for the tables and figures (default: report)")
    report.add_argument("--last", type=int, default=10,
                        help="Table 1's mean averages the last LAST test epochs (default: 10, the paper's 91-100)")
    report.add_argument("--every", default="1M",
                        help="Table 2's frame marks, e.g. 250k for short runs (default: 1M, the paper's)")
    report.set_defaults(run=run)


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ..report import load_runs, write_report

    with usage_errors(parser):
        every = parse_count(args.every, "--every")
        if every == 0:
            raise ValueError(f"--every must be > 0, got {args.every!r}")
        if args.last < 1:
            raise ValueError(f"--last must be >= 1, got {args.last}")
        out = Path(args.out)
        if out.exists() and not out.is_dir():   # it used to fail only after the runs were read
            raise ValueError(f"--out: {str(out)!r} is a file, not a folder for the report")
        runs = load_runs(args.runs)
        writable_folder(out, "--out")
        markdown, files = write_report(runs, args.out, last=args.last, every=every)
    print(markdown, end="")
    print("wrote " + ", ".join(str(f) for f in files), file=sys.stderr)
    return 0
