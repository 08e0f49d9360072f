"""The experts' table and learning curves: each expert run's test score against frames and against wall-clock.

    rows = expert_rows(runs)                        # one row per expert run (train-expert, DQN or PQN)
    text = experts_markdown(rows)
    paths = plot_expert_curves(runs, out)           # expert_<game>.png: test mean vs frames and vs hours,
                                                    # experts.png: every game's curve in one grid
    text = expert_epochs_markdown(run)              # epochs_<run>.md: one line per test epoch, with wall-clock

A shipped expert's folder (ship-expert) is an expert run too; its table row adds the random play measured when
it was shipped. Every row shows published random play and the paper's expert DQN beside it.

Wall-clock at a test epoch is the run's own (progress.csv's wall_s, interpolated at the epoch's frame; it counts
test epochs and checkpoints too, and continues across resumes).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .formats import format_number
from .runs import Run
from .tables import PAPER_DQN_MEAN, PUBLISHED_RANDOM

LAST_EPOCHS = 3            # the "plays" bar of issue 25: the mean over the last 3 test epochs


@dataclass(frozen=True)
class ExpertRow:
    game: str
    run: str
    algorithm: str
    frames: int                # at the last test epoch
    hours: float               # wall-clock at the last test epoch
    last_mean: float           # mean test reward over the last LAST_EPOCHS epochs
    best_mean: float           # the best epoch's mean
    best_max: float            # the best single episode of any epoch
    random_mean: float         # random play measured on the test protocol (a shipped expert's record), else NaN
    published_random: float    # random play as published (NaN for games outside Table 1)
    paper_dqn_mean: float      # the paper's expert DQN (Table 1; NaN outside it)


def wall_hours(run: Run, frames: np.ndarray) -> np.ndarray:
    """Wall-clock hours of the run at these frames (NaN without a progress.csv)."""
    path = run.path / "progress.csv"
    if not path.is_file():
        return np.full(len(frames), math.nan)
    with open(path, newline="") as f:
        rows = [(float(r["frames"]), float(r["wall_s"])) for r in csv.DictReader(f) if r.get("wall_s")]
    if not rows:
        return np.full(len(frames), math.nan)
    at, seconds = np.array(rows).T
    return np.interp(frames, np.concatenate([[0.0], at]), np.concatenate([[0.0], seconds])) / 3600


def expert_rows(runs: list[Run]) -> list[ExpertRow]:
    rows = []
    for run in (r for r in runs if r.kind == "expert"):
        game = run.games[0]
        curve = run.curve(game)
        if curve is None:
            continue
        hours = wall_hours(run, curve.frames.astype(float))
        rows.append(ExpertRow(game=game, run=run.label, algorithm=run.info.get("algorithm", "dqn"),
                              frames=int(curve.frames[-1]), hours=float(hours[-1]),
                              last_mean=_finite(np.mean, curve.mean[-LAST_EPOCHS:]),
                              best_mean=_finite(np.max, curve.mean), best_max=_finite(np.max, curve.max),
                              random_mean=measured_random(run), published_random=PUBLISHED_RANDOM.get(game, math.nan),
                              paper_dqn_mean=PAPER_DQN_MEAN.get(game, math.nan)))
    return rows


def measured_random(run: Run) -> float:
    """The random play a shipped expert's record measured (agents/shipping.py), NaN for other runs."""
    mean = run.info.get("shipped", {}).get("random", {}).get("mean")
    return float(mean) if mean is not None else math.nan


def _finite(reduce, values: np.ndarray) -> float:
    """reduce over the finite values (an epoch with no finished episode has NaN); NaN when there are none."""
    values = values[np.isfinite(values)]
    return float(reduce(values)) if len(values) else math.nan


def experts_markdown(rows: list[ExpertRow]) -> str:
    header = ["game", "run", "algorithm", "frames", "hours", f"mean (last {LAST_EPOCHS} epochs)", "best epoch mean",
              "best episode", "random (measured)", "random (published)", "paper's DQN"]
    lines = ["## Experts (test reward)", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r.game, r.run, r.algorithm, f"{r.frames / 1e6:.1f}M", f"{r.hours:.2f}", format_number(r.last_mean),
                 format_number(r.best_mean), format_number(r.best_max), format_number(r.random_mean),
                 format_number(r.published_random), format_number(r.paper_dqn_mean)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Test epochs on the paper's protocol (epsilon 0.05); hours are each run's wall-clock at its last "
                  f"test epoch (test epochs and checkpoints included)."]
    return "\n".join(lines) + "\n"


def expert_epochs_markdown(run: Run) -> str:
    """The run's test epochs as a Markdown table (what benchmarks/RESULTS.md shows for each learning run)."""
    game = run.games[0]
    curve = run.curve(game)
    minutes = wall_hours(run, curve.frames.astype(float)) * 60
    lines = [f"## {game}: test epochs of {run.label} ({run.info.get('algorithm', 'dqn')})", "",
             "| test epoch | frames | wall-clock (min) | test mean | test max | episodes |", "|---|---|---|---|---|---|"]
    for epoch, frames, minute, mean, top, episodes in zip(curve.epoch, curve.frames, minutes, curve.mean, curve.max,
                                                          curve.episodes):
        cells = [str(epoch), f"{frames / 1e6:.3g}M", f"{minute:.1f}" if math.isfinite(minute) else "",
                 format_number(mean), format_number(top), format_number(episodes)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_expert_curves(runs: list[Run], out: Path) -> list[Path]:
    """expert_<game>.png: every expert run of the game, mean test reward against frames and against hours."""
    from .figures import _file_safe, new_figure

    by_game: dict[str, list[Run]] = {}
    for run in (r for r in runs if r.kind == "expert" and r.curve(r.games[0]) is not None):
        by_game.setdefault(run.games[0], []).append(run)
    paths = []
    for game, game_runs in by_game.items():
        fig = new_figure(width=10.0)
        by_frames, by_hours = fig.subplots(1, 2, sharey=True)
        for run in game_runs:
            curve = run.curve(game)
            label = f"{run.label} ({run.info.get('algorithm', 'dqn')})"
            marker = "." if len(curve.frames) <= 40 else None
            by_frames.plot(curve.frames / 1e6, curve.mean, marker=marker, label=label)
            by_hours.plot(wall_hours(run, curve.frames.astype(float)) * 60, curve.mean, marker=marker, label=label)
        by_frames.set_xlabel("training frames (millions)")
        by_hours.set_xlabel("wall-clock (minutes)")
        by_frames.set_ylabel("mean test reward (epsilon 0.05)")
        for ax in (by_frames, by_hours):
            ax.grid(alpha=0.3)
        by_hours.legend(fontsize="small")
        fig.suptitle(f"{game}: experts")
        path = out / f"expert_{_file_safe(game)}.png"
        fig.savefig(path, dpi=100)
        paths.append(path)
    return paths


def plot_experts_grid(runs: list[Run], rows: list[ExpertRow], out: Path) -> Path:
    """experts.png: one panel per game, each expert run's mean test reward against frames, with random play
    (measured where a shipped record has it, else published) and the paper's DQN as horizontal lines."""
    from .figures import new_figure

    games = list(dict.fromkeys(r.game for r in rows))
    columns = min(4, len(games))
    lines = -(-len(games) // columns)
    fig = new_figure(width=3.2 * columns, height=2.6 * lines + 0.4)
    axes = np.atleast_1d(fig.subplots(lines, columns, squeeze=False)).ravel()
    for ax, game in zip(axes, games):
        for run in (r for r in runs if r.kind == "expert" and r.games[0] == game and r.curve(game) is not None):
            curve = run.curve(game)
            hours = wall_hours(run, curve.frames.astype(float))[-1]
            ax.plot(curve.frames / 1e6, curve.mean, marker="." if len(curve.frames) <= 40 else None,
                    label=f"{run.label}: {hours:.1f} h" if math.isfinite(hours) else run.label)
        row = next(r for r in rows if r.game == game)
        random = row.random_mean if math.isfinite(row.random_mean) else row.published_random
        if math.isfinite(random):
            ax.axhline(random, color="gray", linestyle="--", linewidth=1, label="random")
        if math.isfinite(row.paper_dqn_mean):
            ax.axhline(row.paper_dqn_mean, color="black", linestyle=":", linewidth=1, label="paper's DQN")
        ax.set_title(game, fontsize="medium")
        ax.set_xlabel("training frames (M)", fontsize="small")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    for ax in axes[len(games):]:
        ax.set_visible(False)
    axes[0].set_ylabel("mean test reward")
    fig.suptitle("Experts: test reward (epsilon 0.05)", fontsize="medium")
    path = out / "experts.png"
    fig.savefig(path, dpi=90)
    return path
