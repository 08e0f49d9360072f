"""Steady-state rates of a training run, read from its own progress rows.

A trainer writes one progress row every log_every frames with the frames/s of that interval; the rows
after ``from_frame`` are the steady state a user lives in (start-up, the first reset, allocation and the
warm-up of learning are in the rows before). Shared by the trainer benchmarks.
"""

from __future__ import annotations

from pathlib import Path

from actormimic_fast.files.run_logs import read_csv


def steady_fps(run_folder: str | Path, from_frame: int, games: int = 1) -> float:
    """Frames/s (of all `games` the folder reports) over the progress intervals that start at or after
    from_frame; a row's frames count each game's frames, its fps all its games' frames per second."""
    rows = read_csv(Path(run_folder) / "progress.csv")
    frames = [int(r["frames"]) for r in rows]
    timed = [(frames[i] - frames[i - 1], float(rows[i]["fps"])) for i in range(1, len(rows))
             if frames[i - 1] >= from_frame]
    if not timed:
        raise ValueError(f"{run_folder}: no progress interval starts at or after frame {from_frame}")
    all_frames = sum(f * games for f, _ in timed)
    return all_frames / sum(f * games / fps for f, fps in timed)
