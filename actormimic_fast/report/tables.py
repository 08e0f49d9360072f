"""The paper's tables as rows: Table 1 (multitask: AMN vs expert DQN and the baselines) and Table 2 (transfer: reward
at every frame mark for each initialisation). Definitions (the paper's, section 5.1 and Table 2):

- mean: the average of the per-epoch mean test rewards over the last `last` (10) test epochs whose mean is finite
  (the paper: epochs 91-100); a run with fewer such epochs is averaged over all of them (the report says so).
- max: the largest per-epoch max test reward over all test epochs.
- agreement: the average of the per-epoch agreement over the last `last` epochs where it is recorded.
- AMN/DQN mean: 100 * AMN mean / DQN mean, only when the DQN mean is positive (a ratio to a score <= 0 says
  nothing about how close the AMN is).
- Table 2 at mark m: the average of the test means of the epochs whose training frames lie in (m - every, m];
  empty when the run's last test is before m, so that a mark never averages a partial interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .formats import format_frames
from .runs import BASELINE_KINDS, TRANSFER_INITS, Curve, Run

# The paper's Table 1 (SPEC section 6): AMN mean as a percentage of the expert DQN's, for reference.
PAPER_AMN_DQN_PERCENT = {"atlantis": 288.2, "boxing": 93.61, "breakout": 127.0, "crazy_climber": 59.33,
                         "enduro": 109.1, "pong": 78.01, "seaquest": 27.51, "space_invaders": 68.44}
# The paper's expert DQN mean test reward (Table 1, SPEC section 6) and published random play (SPEC section 8).
PAPER_DQN_MEAN = {"atlantis": 57279, "boxing": 81.47, "breakout": 273.15, "crazy_climber": 96189, "enduro": 457.60,
                  "pong": 19.581, "seaquest": 4278.9, "space_invaders": 1669.2}
PUBLISHED_RANDOM = {"atlantis": 12850, "boxing": 0.1, "breakout": 1.7, "crazy_climber": 10780, "enduro": 0.0,
                    "pong": -20.7, "seaquest": 68.4, "space_invaders": 148}


@dataclass(frozen=True)
class Summary:
    """The paper's two numbers for one curve, and which epochs the mean averaged."""

    mean: float
    max: float
    mean_epochs: tuple[int, ...]


def last_mean(epoch: np.ndarray, values: np.ndarray, last: int) -> tuple[float, tuple[int, ...]]:
    """The average of the last `last` finite values and their epochs; (NaN, ()) when none is finite."""
    finite = np.flatnonzero(np.isfinite(values))[-last:]
    if finite.size == 0:
        return math.nan, ()
    return float(values[finite].mean()), tuple(int(e) for e in epoch[finite])


def summarize(curve: Curve, last: int = 10) -> Summary:
    """The paper's mean (over the last `last` test epochs) and max (over all) of one curve."""
    mean, epochs = last_mean(curve.epoch, curve.mean, last)
    finite_max = curve.max[np.isfinite(curve.max)]
    return Summary(mean=mean, max=float(finite_max.max()) if finite_max.size else math.nan, mean_epochs=epochs)


# Table 1: multitask


@dataclass(frozen=True)
class Table1Row:
    game: str
    amn_run: str
    dqn: Summary | None
    dqn_source: str          # the expert run's folder, or "<amn run> (expert tests)"
    amn: Summary
    agreement: float
    baselines: dict[str, Summary | None]   # "mdqn" / "mcdqn" -> summary (None: that run lacks the game)

    @property
    def amn_dqn_percent(self) -> float:
        if self.dqn is None or not self.dqn.mean > 0 or not math.isfinite(self.amn.mean):
            return math.nan
        return 100.0 * self.amn.mean / self.dqn.mean


def table1(runs: list[Run], last: int = 10) -> list[Table1Row]:
    """One row per game of every AMN run (empty when no AMN run is given)."""
    _check_last(last)
    if not any(r.kind == "amn" for r in runs):
        return []               # expert runs alone make the experts' table (report/experts.py), not this one
    experts = _one_run_per_game([r for r in runs if r.kind == "expert"], "expert")
    baselines = {kind: _one_run_per_game([r for r in runs if r.kind == kind], kind) for kind in BASELINE_KINDS}
    given = [kind for kind in BASELINE_KINDS if baselines[kind]]
    rows = []
    for amn_run in (r for r in runs if r.kind == "amn"):
        for game in amn_run.games:
            amn_curve = amn_run.curve(game)
            if amn_curve is None:
                raise ValueError(f"run {str(amn_run.path)!r} (amn) has no test rows for game {game!r}")
            if game in experts:
                expert_run = experts[game]
                dqn, source = summarize(expert_run.curve(game), last), expert_run.label
            elif (expert_curve := amn_run.curve(game, "expert")) is not None:
                dqn, source = summarize(expert_curve, last), f"{amn_run.label} (expert tests)"
            else:
                dqn, source = None, ""
            agreement, _ = last_mean(amn_curve.epoch, amn_curve.agreement, last)
            row_baselines = {}
            for kind in given:
                run = baselines[kind].get(game)
                curve = run.curve(game) if run else None
                row_baselines[kind] = summarize(curve, last) if curve is not None else None
            rows.append(Table1Row(game=game, amn_run=amn_run.label, dqn=dqn, dqn_source=source,
                                  amn=summarize(amn_curve, last), agreement=agreement, baselines=row_baselines))
    return rows


def _one_run_per_game(runs: list[Run], kind: str) -> dict[str, Run]:
    by_game: dict[str, Run] = {}
    for run in runs:
        for game in run.games:
            if game in by_game:
                raise ValueError(f"two {kind} runs for game {game!r}: {str(by_game[game].path)!r} and "
                                 f"{str(run.path)!r}; give one")
            by_game[game] = run
    return by_game


# Table 2: transfer


@dataclass(frozen=True)
class Table2Row:
    game: str
    frames: int                      # the mark: training frames on the target game
    reward: dict[str, float]         # init given -> average test reward in (frames - every, frames]; NaN: none


def table2(runs: list[Run], every: int = 1_000_000) -> list[Table2Row]:
    """One row per target game and frame mark, every `every` frames up to the longest run's last test."""
    if not isinstance(every, int) or isinstance(every, bool) or every <= 0:
        raise ValueError(f"every must be a positive number of frames, got {every!r}")
    by_game: dict[str, dict[str, Run]] = {}
    for run in (r for r in runs if r.kind == "transfer"):
        game, init = run.games[0], run.info["init"]
        same = by_game.setdefault(game, {})
        if init in same:
            raise ValueError(f"two transfer runs for game {game!r} with init {init!r}: {str(same[init].path)!r} and "
                             f"{str(run.path)!r}; give one")
        same[init] = run
    rows = []
    for game, by_init in by_game.items():
        curves = {init: run.curve(game) for init, run in by_init.items()}
        last_frames = max(int(c.frames.max()) for c in curves.values())
        if last_frames < every:
            raise ValueError(f"the transfer runs for game {game!r} end at {format_frames(last_frames)} frames, before "
                             f"the first mark ({format_frames(every)}); pass a smaller every (--every)")
        for mark in range(every, last_frames + 1, every):
            reward = {init: _interval_mean(curves[init], mark - every, mark) for init in TRANSFER_INITS
                      if init in curves}
            rows.append(Table2Row(game=game, frames=mark, reward=reward))
    return rows


def _interval_mean(curve: Curve, start: int, end: int) -> float:
    """The average finite test mean over epochs with frames in (start, end]; NaN if the run stops before end."""
    if curve.frames.max() < end:
        return math.nan
    inside = (curve.frames > start) & (curve.frames <= end) & np.isfinite(curve.mean)
    return float(curve.mean[inside].mean()) if inside.any() else math.nan


def _check_last(last: int) -> None:
    if not isinstance(last, int) or isinstance(last, bool) or last < 1:
        raise ValueError(f"last must be a positive number of test epochs, got {last!r}")
