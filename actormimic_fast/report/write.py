"""Writing a report folder: each table as Markdown and CSV, and the learning-curve figures."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from .experts import (ExpertRow, expert_epochs_markdown, expert_rows, experts_markdown, plot_expert_curves,
                      plot_experts_grid)
from .markdown import table1_markdown, table2_markdown
from .runs import TRANSFER_INITS, Run
from .tables import PAPER_AMN_DQN_PERCENT, Table1Row, table1, table2


def write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    """Numbers at full precision, NaN as an empty cell."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if isinstance(v, float) and math.isnan(v) else v for v in (row[c] for c in columns)])


def write_report(runs: list[Run], out: str | Path, *, last: int = 10, every: int = 1_000_000) -> tuple[str, list[Path]]:
    """Every table and figure the runs support, into folder `out`; returns (the tables as Markdown, files)."""
    rows1, rows2, expert_table = table1(runs, last), table2(runs, every), []
    if not rows1 and not rows2:
        expert_table = expert_rows(runs)          # expert runs alone: their own table and curves
    if not rows1 and not rows2 and not expert_table:
        kinds = ", ".join(sorted({r.kind for r in runs}))
        raise ValueError(f"the runs given ({kinds}) support no table: Table 1 needs an amn run, Table 2 transfer "
                         f"runs, the experts' table expert runs")
    from . import figures   # matplotlib is slow to import: only once there is something to draw

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    markdown, files = [], []
    if rows1:
        text = table1_markdown(rows1, last)
        (out / "table1.md").write_text(text)
        write_csv(out / "table1.csv", _table1_columns(rows1), [_table1_values(r) for r in rows1])
        markdown.append(text)
        files += [out / "table1.md", out / "table1.csv"]
        files += figures.plot_multitask_curves(runs, rows1, out)
    if rows2:
        text = table2_markdown(rows2, every)
        (out / "table2.md").write_text(text)
        write_csv(out / "table2.csv", ["game", "frames", *TRANSFER_INITS],
                  [{"game": r.game, "frames": r.frames, **{i: r.reward.get(i, math.nan) for i in TRANSFER_INITS}}
                   for r in rows2])
        markdown.append(text)
        files += [out / "table2.md", out / "table2.csv"]
        files += figures.plot_transfer_curves(runs, out)
    if expert_table:
        text = experts_markdown(expert_table)
        (out / "experts.md").write_text(text)
        write_csv(out / "experts.csv", list(ExpertRow.__dataclass_fields__), [vars(r) for r in expert_table])
        markdown.append(text)
        files += [out / "experts.md", out / "experts.csv"]
        for run in (r for r in runs if r.kind == "expert" and r.curve(r.games[0]) is not None):
            name = figures._file_safe(run.label)
            path = out / f"epochs_{name}.md"
            for n in range(2, len(runs) + 2):             # two runs' folders may share a name: keep both
                if path not in files:
                    break
                path = out / f"epochs_{name}_{n}.md"
            path.write_text(expert_epochs_markdown(run))
            files.append(path)
        files += [*plot_expert_curves(runs, out), plot_experts_grid(runs, expert_table, out)]
    return "\n".join(markdown), files


def _table1_columns(rows: list[Table1Row]) -> list[str]:
    baselines = rows[0].baselines if rows else {}
    return (["game", "amn_run", "dqn_mean", "dqn_max", "amn_mean", "amn_max", "amn_dqn_percent", "agreement"]
            + [f"{kind}_{stat}" for kind in baselines for stat in ("mean", "max")]
            + ["paper_amn_dqn_percent", "dqn_source", "dqn_mean_epochs", "amn_mean_epochs"])


def _table1_values(row: Table1Row) -> dict:
    values = {"game": row.game, "amn_run": row.amn_run,
              "dqn_mean": row.dqn.mean if row.dqn else math.nan, "dqn_max": row.dqn.max if row.dqn else math.nan,
              "amn_mean": row.amn.mean, "amn_max": row.amn.max, "amn_dqn_percent": row.amn_dqn_percent,
              "agreement": row.agreement,
              "paper_amn_dqn_percent": PAPER_AMN_DQN_PERCENT.get(row.game, math.nan),
              "dqn_source": row.dqn_source, "dqn_mean_epochs": len(row.dqn.mean_epochs) if row.dqn else 0,
              "amn_mean_epochs": len(row.amn.mean_epochs)}
    for kind, summary in row.baselines.items():
        values[f"{kind}_mean"] = summary.mean if summary else math.nan
        values[f"{kind}_max"] = summary.max if summary else math.nan
    return values
