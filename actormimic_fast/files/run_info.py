"""run.json: what a run folder holds, written when the run starts and at every resume; `report` reads it to
place the run.

    {"kind": "expert" | "amn" | "mdqn" | "mcdqn" | "transfer", "games": [...], ...,
     "segments": [{"started", "frames", "command", "commit", "machine", ...}, ...]}   # files/provenance.py

``segments`` has one record per training segment (the fresh start, then each --resume), oldest first: a
resumed run keeps the records run.json already had.
"""

from __future__ import annotations

import json
from pathlib import Path

RUN_INFO = "run.json"


def write_run_info(out: str | Path, kind: str, games: list[str], *, segment: dict | None = None,
                   resumed: bool = False, **extra) -> Path:
    """Record what the run in folder out is (kind, games and anything else a report needs) and, with segment,
    what started this segment of it (appended to the segments of the run.json there when resumed)."""
    path = Path(out) / RUN_INFO
    path.parent.mkdir(parents=True, exist_ok=True)
    info = {"kind": kind, "games": list(games), **extra}
    if segment is not None:
        earlier = []
        if resumed and path.is_file():
            try:
                earlier = json.loads(path.read_text()).get("segments", [])
            except (json.JSONDecodeError, AttributeError):
                earlier = []        # a torn run.json: its records are lost, the run is not
        info["segments"] = [*earlier, segment]
    tmp = path.with_name(f".{RUN_INFO}.tmp")
    tmp.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)               # a kill never leaves half a run.json (the records of earlier segments)
    return path


def read_run_info(out: str | Path) -> dict:
    """The run.json of run folder out; FileNotFoundError naming the folder when it has none."""
    path = Path(out) / RUN_INFO
    if not path.is_file():
        raise FileNotFoundError(f"{str(out)!r} is not a run folder of this package (no {RUN_INFO})")
    return json.loads(path.read_text())
