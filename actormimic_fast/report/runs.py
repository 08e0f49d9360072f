"""Reading run folders: run.json (kind, games, ...) and test.csv (one row per test epoch, game and policy), written
by the trainers through metrics.write_run_info and RunLogger, into one test curve per (game, policy)."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..files.run_info import RUN_INFO

KINDS = ("expert", "amn", "mdqn", "mcdqn", "transfer")
POLICY_OF_KIND = {"expert": "dqn", "amn": "amn", "mdqn": "mdqn", "mcdqn": "mcdqn", "transfer": "dqn"}
BASELINE_KINDS = ("mdqn", "mcdqn")
TRANSFER_INITS = ("random", "amn-policy", "amn-feature")
INIT_TITLES = {"random": "Random", "amn-policy": "AMN-policy", "amn-feature": "AMN-feature"}
TEST_CSV = "test.csv"


@dataclass(frozen=True)
class Curve:
    """One policy's test results on one game, one entry per test epoch in epoch order (NaN where missing)."""

    epoch: np.ndarray
    frames: np.ndarray
    mean: np.ndarray
    max: np.ndarray
    agreement: np.ndarray
    episodes: np.ndarray       # finished test episodes per epoch (the mean and max are over these)


@dataclass
class Run:
    """A run folder: what run.json says it is and its test curves keyed by (game, policy)."""

    path: Path
    kind: str
    games: tuple[str, ...]
    info: dict
    curves: dict[tuple[str, str], Curve] = field(repr=False)

    @property
    def label(self) -> str:
        return self.path.resolve().name or str(self.path)

    @property
    def policy(self) -> str:
        """The policy whose rows are this run's own results ("amn" for an AMN run, "dqn" for an expert...)."""
        return POLICY_OF_KIND[self.kind]

    @property
    def frames_per_game(self) -> bool:
        """True when test.csv's frames count one game's frames (always so for a single-game run)."""
        return len(self.games) == 1 or bool(self.info.get("frames_per_game", False))

    def curve(self, game: str, policy: str | None = None) -> Curve | None:
        return self.curves.get((game, policy or self.policy))


def load_run(path: str | Path) -> Run:
    """Read run folder `path`; ValueError or FileNotFoundError naming the folder when it is not a usable run."""
    path = Path(path)
    info_path = path / RUN_INFO
    if not info_path.is_file():
        hint = ""
        if path.is_dir():
            inner = sorted(p.name for p in path.iterdir() if (p / RUN_INFO).is_file())
            if inner:
                hint = f"; its subfolders {', '.join(inner)} are: pass them, e.g. {path}/*"
        raise FileNotFoundError(f"{str(path)!r} is not a run folder (no {RUN_INFO}){hint}")
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{str(info_path)!r} is not valid JSON: {exc}") from None
    kind = info.get("kind") if isinstance(info, dict) else None
    if kind not in KINDS:
        raise ValueError(f"run {str(path)!r} has unknown kind {kind!r} in {RUN_INFO}; "
                         f"known kinds are {', '.join(KINDS)}")
    games = info.get("games")
    if not isinstance(games, list) or not games or not all(isinstance(g, str) for g in games):
        raise ValueError(f"run {str(path)!r}: {RUN_INFO} must list its games as a non-empty list of names, "
                         f"got games={games!r}")
    if kind in ("expert", "transfer") and len(games) != 1:
        raise ValueError(f"run {str(path)!r}: {kind} runs play one game, got games={games!r}")
    if kind == "transfer" and info.get("init") not in TRANSFER_INITS:
        raise ValueError(f"run {str(path)!r}: a transfer run's init must be one of {', '.join(TRANSFER_INITS)}, "
                         f"got init={info.get('init')!r}")
    run = Run(path=path, kind=kind, games=tuple(games), info=info, curves=_read_curves(path / TEST_CSV))
    if all(run.curve(g) is None for g in run.games):
        raise ValueError(f"run {str(path)!r} ({kind}) has no test rows for policy {run.policy!r} in {TEST_CSV}: "
                         f"did it finish a test epoch?")
    return run


def load_runs(paths) -> list[Run]:
    """load_run for each path; ValueError when there are none."""
    paths = list(paths)
    if not paths:
        raise ValueError("no runs given: pass one or more run folders (each with a run.json)")
    return [load_run(p) for p in paths]


def _read_curves(path: Path) -> dict[tuple[str, str], Curve]:
    if not path.is_file():
        raise FileNotFoundError(f"run {str(path.parent)!r} has no {TEST_CSV}: did it finish a test epoch?")
    rows: dict[tuple[str, str], dict[int, tuple]] = {}
    with open(path, newline="") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            try:
                values = (int(row["epoch"]), int(row["frames"]), _number(row["mean"]), _number(row["max"]),
                          _number(row.get("agreement")), _number(row.get("episodes")))
                key = (row["game"], row["policy"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{str(path)!r} line {line} is not a test row ({type(exc).__name__}: {exc}): "
                                 f"{row}") from None
            # A resumed run may test an epoch again (killed after the test, before the checkpoint): keep the last.
            rows.setdefault(key, {})[values[0]] = values
    curves = {}
    for key, by_epoch in rows.items():
        columns = zip(*(by_epoch[e] for e in sorted(by_epoch)))
        epoch, frames, mean, top, agreement, episodes = (np.array(c) for c in columns)
        curves[key] = Curve(epoch=epoch, frames=frames, mean=mean.astype(float), max=top.astype(float),
                            agreement=agreement.astype(float), episodes=episodes.astype(float))
    return curves


def _number(text: str | None) -> float:
    return float(text) if text not in (None, "") else math.nan
