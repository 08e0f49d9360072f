"""The tables as Markdown, with the definitions and footnotes a reader needs under each."""

from __future__ import annotations

import math

from .formats import format_fraction, format_frames, format_number, format_percent
from .runs import INIT_TITLES, TRANSFER_INITS
from .tables import PAPER_AMN_DQN_PERCENT, Summary, Table1Row, Table2Row


def table1_markdown(rows: list[Table1Row], last: int = 10) -> str:
    several = len({r.amn_run for r in rows}) > 1
    header = (["game"] + (["AMN run"] if several else [])
              + ["DQN mean", "DQN max", "AMN mean", "AMN max", "AMN/DQN mean", "agreement"]
              + [f"{kind.upper()} {stat}" for kind in (rows[0].baselines if rows else {}) for stat in ("mean", "max")]
              + ["paper AMN/DQN"])
    short = []   # (what, epochs) averaged over fewer than `last` epochs

    def mean_cell(summary: Summary | None, what: str) -> str:
        if summary is None:
            return ""
        cell = format_number(summary.mean)
        if 0 < len(summary.mean_epochs) < last:
            short.append((what, summary.mean_epochs))
            cell += " †"
        return cell

    lines = ["## Table 1: multitask Actor-Mimic against the expert DQNs (test reward)", "",
             _markdown_row(header), _markdown_row(["---"] * len(header))]
    for row in rows:
        cells = [row.game] + ([row.amn_run] if several else [])
        cells += [mean_cell(row.dqn, f"{row.game} DQN"), format_number(row.dqn.max) if row.dqn else "",
                  mean_cell(row.amn, f"{row.game} AMN"), format_number(row.amn.max),
                  format_percent(row.amn_dqn_percent), format_fraction(row.agreement)]
        for kind, summary in row.baselines.items():
            cells += [mean_cell(summary, f"{row.game} {kind.upper()}"), format_number(summary.max) if summary else ""]
        cells.append(format_percent(PAPER_AMN_DQN_PERCENT.get(row.game, math.nan)))
        lines.append(_markdown_row(cells))
    sources = sorted({f"{r.game}: {r.dqn_source}" for r in rows if r.dqn_source})
    where = ("DQN numbers from " + "; ".join(sources) + "." if sources
             else "No DQN numbers: no expert runs and no expert tests in the AMN runs.")
    lines += ["",
              f"Mean: the average of the per-epoch mean test reward over the last {last} test epochs with a finite "
              f"mean (the paper: epochs 91-100). Max: the largest per-epoch max test reward over all test epochs. "
              f"AMN/DQN mean: 100 x AMN mean / DQN mean (empty when the DQN mean is not positive). Agreement: "
              f"the share of test states where the AMN's greedy action is the expert's, averaged over the last "
              f"{last} test epochs that recorded it. Empty cells: no run or no completed test episode.",
              "", where]
    if short:
        lines += ["", f"† averaged over fewer than {last} test epochs (the run is shorter than the paper's 100): "
                  + "; ".join(f"{what} over {len(epochs)} (epochs {_epoch_list(epochs)})" for what, epochs in short)
                  + "."]
    return "\n".join(lines) + "\n"


def table2_markdown(rows: list[Table2Row], every: int = 1_000_000) -> str:
    lines = ["## Table 2: transfer to new games, average test reward by training frames", ""]
    for game in dict.fromkeys(r.game for r in rows):
        inits = [i for i in TRANSFER_INITS if i in next(r for r in rows if r.game == game).reward]
        lines += [f"### {game}", "", _markdown_row(["frames"] + [INIT_TITLES[i] for i in inits]),
                  _markdown_row(["---"] * (len(inits) + 1))]
        for row in (r for r in rows if r.game == game):
            values = [row.reward[i] for i in inits]
            best = max((v for v in values if math.isfinite(v)), default=math.nan)
            cells = [f"**{format_number(v)}**" if v == best else format_number(v) for v in values]
            lines.append(_markdown_row([format_frames(row.frames)] + cells))
        lines.append("")
    lines.append(f"Each cell: the average of the mean test reward of the test epochs whose training frames lie in "
                 f"(mark - {format_frames(every)}, mark] (the paper: the 4 test epochs of each 1M frames). Bold: the "
                 f"best initialisation at that mark. Empty: the run had not reached the mark or completed no test "
                 f"episode in it.")
    return "\n".join(lines) + "\n"


def _markdown_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _epoch_list(epochs: tuple[int, ...]) -> str:
    contiguous = list(epochs) == list(range(epochs[0], epochs[-1] + 1))
    return f"{epochs[0]}-{epochs[-1]}" if contiguous and len(epochs) > 1 else ", ".join(map(str, epochs))
