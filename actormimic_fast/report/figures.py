"""The report's learning-curve figures: the paper's Figure 1 (multitask) and Figure 7 (transfer), one PNG per game.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot), so nothing opens a window and importing this
module leaves the user's matplotlib backend alone.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .runs import BASELINE_KINDS, INIT_TITLES, TRANSFER_INITS, Run
from .tables import Table1Row


def plot_multitask_curves(runs: list[Run], rows: list[Table1Row], out: Path) -> list[Path]:
    """amn_<game>.png: each AMN run's (and baseline's) mean test reward per epoch, the expert's mean and max as
    horizontal lines. The x axis is training frames per game when every curve's run counts them so, else epochs
    (multitask runs that count all games' frames together are compared per epoch, as in the paper's Figure 1)."""
    amn_runs = [r for r in runs if r.kind == "amn"]
    baseline_runs = [r for r in runs if r.kind in BASELINE_KINDS]
    paths = []
    for game in dict.fromkeys(row.game for row in rows):
        curves = [("AMN" if len(amn_runs) == 1 else f"AMN ({run.label})", run, run.curve(game))
                  for run in amn_runs if run.curve(game) is not None]
        curves += [(run.kind.upper(), run, run.curve(game)) for run in baseline_runs if run.curve(game) is not None]
        per_game_frames = all(run.frames_per_game for _, run, _ in curves)
        fig, ax = _figure()
        for label, _, curve in curves:
            x = curve.frames / 1e6 if per_game_frames else curve.epoch
            ax.plot(x, curve.mean, marker="." if len(x) <= 40 else None, label=label)
        experts = {(row.dqn.mean, row.dqn.max, row.dqn_source) for row in rows if row.game == game and row.dqn}
        for mean, top, source in sorted(experts, key=lambda e: e[2]):
            suffix = f" ({source})" if len(experts) > 1 else ""
            if math.isfinite(mean):
                ax.axhline(mean, color="black", linestyle="--", linewidth=1, label=f"expert DQN mean{suffix}")
            if math.isfinite(top):
                ax.axhline(top, color="gray", linestyle=":", linewidth=1, label=f"expert DQN max{suffix}")
        ax.set_xlabel("training frames per game (millions)" if per_game_frames else "test epoch")
        paths.append(_save(fig, ax, f"{game}: multitask", out / f"amn_{_file_safe(game)}.png"))
    return paths


def plot_transfer_curves(runs: list[Run], out: Path) -> list[Path]:
    """transfer_<game>.png: the mean test reward of each initialisation against training frames."""
    by_game: dict[str, dict[str, Run]] = {}
    for run in (r for r in runs if r.kind == "transfer"):
        by_game.setdefault(run.games[0], {})[run.info["init"]] = run
    paths = []
    for game, by_init in by_game.items():
        fig, ax = _figure()
        for init in (i for i in TRANSFER_INITS if i in by_init):
            curve = by_init[init].curve(game)
            ax.plot(curve.frames / 1e6, curve.mean, marker="." if len(curve.frames) <= 40 else None,
                    label=INIT_TITLES[init])
        ax.set_xlabel("training frames (millions)")
        paths.append(_save(fig, ax, f"{game}: transfer", out / f"transfer_{_file_safe(game)}.png"))
    return paths


def new_figure(width: float = 6.4, height: float = 4.2) -> Figure:
    """A figure on its own Agg canvas (no pyplot)."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _figure():
    fig = new_figure()
    return fig, fig.add_subplot()


def _save(fig: Figure, ax, title: str, path: Path) -> Path:
    ax.set_title(title)
    ax.set_ylabel("mean test reward")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.savefig(path, dpi=100)
    return path


def _file_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)
