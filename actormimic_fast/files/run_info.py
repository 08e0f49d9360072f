"""run.json: what a run folder holds, written once when the run starts; `report` reads it to place the run.

    {"kind": "expert" | "amn" | "mdqn" | "mcdqn" | "transfer", "games": [...], ...}
"""

from __future__ import annotations

import json
from pathlib import Path

RUN_INFO = "run.json"


def write_run_info(out: str | Path, kind: str, games: list[str], **extra) -> Path:
    """Record what the run in folder out is (kind, games and anything else a report needs)."""
    path = Path(out) / RUN_INFO
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"kind": kind, "games": list(games), **extra}, indent=2, sort_keys=True) + "\n")
    return path


def read_run_info(out: str | Path) -> dict:
    """The run.json of run folder out; FileNotFoundError naming the folder when it has none."""
    path = Path(out) / RUN_INFO
    if not path.is_file():
        raise FileNotFoundError(f"{str(out)!r} is not a run folder of this package (no {RUN_INFO})")
    return json.loads(path.read_text())
