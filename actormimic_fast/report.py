"""The paper's tables from run folders: Table 1 (multitask: AMN vs expert DQN and the baselines) and Table 2
(transfer: reward at every frame mark for each initialisation).

A run folder holds run.json (kind, games, ...) and test.csv (one row per test epoch, game and policy), written by
the trainers through metrics.write_run_info and RunLogger. Definitions (the paper's, section 5.1 and Table 2):

- mean: the average of the per-epoch mean test rewards over the last `last` (10) test epochs whose mean is finite
  (the paper: epochs 91-100); a run with fewer such epochs is averaged over all of them (the report says so).
- max: the largest per-epoch max test reward over all test epochs.
- agreement: the average of the per-epoch agreement over the last `last` epochs where it is recorded.
- AMN/DQN mean: 100 * AMN mean / DQN mean, only when the DQN mean is positive (a ratio to a score <= 0 says
  nothing about how close the AMN is).
- Table 2 at mark m: the average of the test means of the epochs whose training frames lie in (m - every, m];
  empty when the run's last test is before m, so that a mark never averages a partial interval.

The figures are drawn by actormimic_fast.plots.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .metrics import RUN_INFO
from .sizes import format_count

KINDS = ("expert", "amn", "mdqn", "mcdqn", "transfer")
POLICY_OF_KIND = {"expert": "dqn", "amn": "amn", "mdqn": "mdqn", "mcdqn": "mcdqn", "transfer": "dqn"}
BASELINE_KINDS = ("mdqn", "mcdqn")
TRANSFER_INITS = ("random", "amn-policy", "amn-feature")
INIT_TITLES = {"random": "Random", "amn-policy": "AMN-policy", "amn-feature": "AMN-feature"}
TEST_CSV = "test.csv"

# The paper's Table 1 (SPEC section 6): AMN mean as a percentage of the expert DQN's, for reference.
PAPER_AMN_DQN_PERCENT = {"atlantis": 288.2, "boxing": 93.61, "breakout": 127.0, "crazy_climber": 59.33,
                         "enduro": 109.1, "pong": 78.01, "seaquest": 27.51, "space_invaders": 68.44}


@dataclass(frozen=True)
class Curve:
    """One policy's test results on one game, one entry per test epoch in epoch order (NaN where missing)."""

    epoch: np.ndarray
    frames: np.ndarray
    mean: np.ndarray
    max: np.ndarray
    agreement: np.ndarray


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


@dataclass(frozen=True)
class Summary:
    """The paper's two numbers for one curve, and which epochs the mean averaged."""

    mean: float
    max: float
    mean_epochs: tuple[int, ...]


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
                          _number(row.get("agreement")))
                key = (row["game"], row["policy"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{str(path)!r} line {line} is not a test row ({type(exc).__name__}: {exc}): "
                                 f"{row}") from None
            # A resumed run may test an epoch again (killed after the test, before the checkpoint): keep the last.
            rows.setdefault(key, {})[values[0]] = values
    curves = {}
    for key, by_epoch in rows.items():
        columns = zip(*(by_epoch[e] for e in sorted(by_epoch)))
        epoch, frames, mean, top, agreement = (np.array(c) for c in columns)
        curves[key] = Curve(epoch=epoch, frames=frames, mean=mean.astype(float), max=top.astype(float),
                            agreement=agreement.astype(float))
    return curves


def _number(text: str | None) -> float:
    return float(text) if text not in (None, "") else math.nan


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


# ---------------------------------------------------------------------------------------------------------------
# Table 1


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
                  format_percent(row.amn_dqn_percent), _format_fraction(row.agreement)]
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


# ---------------------------------------------------------------------------------------------------------------
# Table 2


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


# ---------------------------------------------------------------------------------------------------------------
# Files


def write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    """Numbers at full precision, NaN as an empty cell."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if isinstance(v, float) and math.isnan(v) else v for v in (row[c] for c in columns)])


def write_report(runs: list[Run], out: str | Path, *, last: int = 10, every: int = 1_000_000) -> tuple[str, list[Path]]:
    """Every table and figure the runs support, into folder `out`; returns (the tables as Markdown, files)."""
    rows1, rows2 = table1(runs, last), table2(runs, every)
    if not rows1 and not rows2:
        kinds = ", ".join(sorted({r.kind for r in runs}))
        raise ValueError(f"the runs given ({kinds}) support no table: Table 1 needs an amn run, Table 2 transfer runs")
    from . import plots   # matplotlib is slow to import: only once there is something to draw

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    markdown, files = [], []
    if rows1:
        text = table1_markdown(rows1, last)
        (out / "table1.md").write_text(text)
        write_csv(out / "table1.csv", _table1_columns(rows1), [_table1_values(r) for r in rows1])
        markdown.append(text)
        files += [out / "table1.md", out / "table1.csv"]
        files += plots.plot_multitask_curves(runs, rows1, out)
    if rows2:
        text = table2_markdown(rows2, every)
        (out / "table2.md").write_text(text)
        write_csv(out / "table2.csv", ["game", "frames", *TRANSFER_INITS],
                  [{"game": r.game, "frames": r.frames, **{i: r.reward.get(i, math.nan) for i in TRANSFER_INITS}}
                   for r in rows2])
        markdown.append(text)
        files += [out / "table2.md", out / "table2.csv"]
        files += plots.plot_transfer_curves(runs, out)
    return "\n".join(markdown), files


# ---------------------------------------------------------------------------------------------------------------
# Formatting


def format_number(x: float) -> str:
    """5 significant digits, whole numbers from 10,000 up (57279, 1669.2, 19.581); empty for NaN."""
    if not math.isfinite(x):
        return ""
    return f"{x:.0f}" if abs(x) >= 10_000 else f"{x:.5g}"


def format_frames(n: int) -> str:
    """1_500_000 -> '1.5M', 250_000 -> '250k', 1234 -> '1234'."""
    return f"{n / 1e6:g}M" if n >= 1_000_000 and n % 10_000 == 0 else format_count(n)


def format_percent(x: float) -> str:
    return f"{x:.1f}%" if math.isfinite(x) else ""


def _format_fraction(x: float) -> str:
    return f"{x:.3f}" if math.isfinite(x) else ""


def _markdown_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _epoch_list(epochs: tuple[int, ...]) -> str:
    contiguous = list(epochs) == list(range(epochs[0], epochs[-1] + 1))
    return f"{epochs[0]}-{epochs[-1]}" if contiguous and len(epochs) > 1 else ", ".join(map(str, epochs))


def _check_last(last: int) -> None:
    if not isinstance(last, int) or isinstance(last, bool) or last < 1:
        raise ValueError(f"last must be a positive number of test epochs, got {last!r}")
