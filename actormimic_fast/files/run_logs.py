"""A run's logs: CSV files, TensorBoard event files and a progress bar, from one object (RunLogger).

Files in the run folder (a fresh run starts them anew; a resumed one keeps what its checkpoint accounts for):
    progress.csv   frames, wall_s, fps, epsilon, loss, q_mean, recent_return, updates   (every log_every frames)
    episodes.csv   frames, game, return, length                                        (every training episode)
    test.csv       epoch, frames, game, policy, mean, max, episodes, test_frames, partial_return, agreement
                   (every test epoch; policy names who played: "dqn", "amn", "expert", ...; agreement is the
                   share of states where the AMN's greedy action equals the expert's, empty when meaningless)
    run.json       what the run is (files/run_info.py)
    tb/            the same scalars for TensorBoard (torch.utils.tensorboard)
"""

from __future__ import annotations

import csv
import math
import sys
from dataclasses import dataclass
from pathlib import Path

COLUMNS = {
    "progress": ("frames", "wall_s", "fps", "epsilon", "loss", "q_mean", "recent_return", "updates"),
    "episodes": ("frames", "game", "return", "length"),
    "test": ("epoch", "frames", "game", "policy", "mean", "max", "episodes", "test_frames", "partial_return",
             "agreement"),
}


@dataclass(frozen=True)
class ResumePoint:
    """Where a resumed run continues: the counters of its checkpoint. Everything the killed run logged after
    that checkpoint is cut from the logs, since the resumed run plays those frames again."""

    frames: int      # progress rows up to this frame mark are kept (TensorBoard too)
    episodes: int    # the first this many episodes.csv rows are kept
    epochs: int      # test.csv rows of epochs up to this one are kept


class RunLogger:
    """Writes rows to <out>/<table>.csv (header once) and scalars to TensorBoard; drives a tqdm bar.

    A fresh run starts new files; a resumed one (resume_at) keeps the rows its checkpoint accounts for.
    """

    def __init__(self, out: str | Path, *, total_frames: int, initial_frames: int = 0, tensorboard: bool = True,
                 progress: bool = True, description: str = "", resume_at: ResumePoint | None = None):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self._files, self._writers = {}, {}
        for table, columns in COLUMNS.items():
            path = self.out / f"{table}.csv"
            kept = _rows_to_keep(path, table, resume_at) if resume_at is not None else []
            f = open(path, "w", newline="")
            writer = csv.writer(f)
            writer.writerow(columns)
            writer.writerows([[row.get(c, "") for c in columns] for row in kept])
            f.flush()
            self._files[table], self._writers[table] = f, writer
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # events after the checkpoint's frame mark are dropped: the resumed run writes them again
            purge = resume_at.frames + 1 if resume_at is not None else None
            self._tb = SummaryWriter(str(self.out / "tb"), purge_step=purge)
        self._bar = None
        if progress and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total_frames, initial=initial_frames, unit="frame", unit_scale=True,
                             desc=description, dynamic_ncols=True)

    def row(self, table: str, **values) -> None:
        """Append one row to table's CSV (missing columns empty) and every numeric value to TensorBoard."""
        columns = COLUMNS[table]
        unknown = set(values) - set(columns)
        if unknown:
            raise ValueError(f"{table}.csv has no column(s) {sorted(unknown)}; columns are {columns}")
        self._writers[table].writerow([_cell(values.get(c)) for c in columns])
        self._files[table].flush()
        if self._tb is not None:
            step = int(values["frames"])
            prefix = f"{table}/" + "".join(f"{values[k]}/" for k in ("game", "policy") if values.get(k))
            for key, value in values.items():
                if key not in ("frames", "game", "epoch", "policy") and isinstance(value, (int, float)) and math.isfinite(value):
                    self._tb.add_scalar(prefix + key, value, step)

    def advance(self, frames: int, **postfix) -> None:
        if self._bar is not None:
            self._bar.update(frames)
            if postfix:
                self._bar.set_postfix({k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in postfix.items()},
                                      refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        if self._tb is not None:
            self._tb.close()
        for f in self._files.values():
            f.close()


def _rows_to_keep(path: Path, table: str, at: ResumePoint) -> list[dict]:
    if not path.is_file():
        return []
    rows = read_csv(path)
    if table == "progress":
        return [r for r in rows if _number(r.get("frames")) <= at.frames]
    if table == "episodes":
        return rows[: at.episodes]
    return [r for r in rows if _number(r.get("epoch")) <= at.epochs]


def _number(text) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.inf          # a row cut short by a kill: dropped


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return value


def read_csv(path: str | Path) -> list[dict[str, str]]:
    """The rows of a metrics CSV as dicts (for tests and notebooks)."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
