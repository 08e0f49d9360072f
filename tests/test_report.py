"""`report`: Table 1 / Table 2 from hand-written run folders, against hand-computed numbers; figures; errors; CLI.

Fixtures (each test.csv written row by row here, not through the trainers):
- expert pong, 12 epochs: mean e (epoch 11 NaN: no episode completed), max e + 5 except 40 at epoch 3
  -> DQN mean = avg of the last 10 finite epochs (2..10, 12) = 66 / 10 = 6.6, DQN max = 40.
- expert breakout, 3 epochs: means 10, 20, 30, max mean + 5 -> mean 20 over 3 epochs (footnoted), max 35.
- AMN (pong, breakout), 12 epochs:
  pong amn mean e/2, max e/2 + 1, agreement e/20 -> mean (3..12)/2 = 3.75, max 7, agreement 0.375,
  AMN/DQN = 3.75 / 6.6 = 56.818...%;
  breakout amn mean 2e, max 2e + 3, agreement e/10 with epoch 12 empty -> mean 15, max 27,
  agreement = avg of epochs 2..11 = 0.65, AMN/DQN = 15 / 20 = 75%;
  expert tests every 4th epoch: pong 100, 110, 120 (max + 10) -> 110 / 130;
  breakout 50, 60, NaN (max + 5) -> 55 / 65.
- MDQN (pong, breakout), 12 epochs: pong mean e - 1, max e -> 6.5 / 12; breakout never completes (NaN) -> empty.
- transfer to gopher, tests every 250k frames:
  random      1, 2, 3, 4, 5, 6, 7, 8         -> 1M: 2.5,  2M: 6.5
  amn-policy  4, 4, 4, 4, 1, 1, 1, NaN       -> 1M: 4.0,  2M: 1.0
  amn-feature 0, 0, 0, 0, 10, 10, 10 (ends at 1.75M) -> 1M: 0.0, 2M: empty (the run never reached 2M)
"""

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from actormimic_fast.cli import main
from actormimic_fast.files.run_info import write_run_info
from actormimic_fast.files.run_logs import COLUMNS
from actormimic_fast.report import load_run, load_runs, table1, table2, table1_markdown, table2_markdown, write_report
from actormimic_fast.files.run_logs import read_csv
from cli_runner import run_cli

NAN = math.nan
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def write_run(folder: Path, kind: str, games: list[str], rows: list[dict], **info) -> Path:
    write_run_info(folder, kind=kind, games=games, **info)
    with open(folder / "test.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS["test"])
        for row in rows:
            writer.writerow(["nan" if isinstance(v, float) and math.isnan(v) else ("" if v is None else v)
                             for v in (row.get(c) for c in COLUMNS["test"])])
    return folder


def epoch_row(epoch, game, policy, mean, top, agreement=None, frames_per_epoch=250_000):
    return {"epoch": epoch, "frames": epoch * frames_per_epoch, "game": game, "policy": policy, "mean": mean,
            "max": top, "episodes": 0 if math.isnan(mean) else 3, "test_frames": 125_000, "partial_return": 0.0,
            "agreement": agreement}


@pytest.fixture
def runs(tmp_path) -> dict[str, Path]:
    folders = {}
    folders["expert_pong"] = write_run(tmp_path / "expert_pong", "expert", ["pong"], [
        epoch_row(e, "pong", "dqn", NAN if e == 11 else float(e), NAN if e == 11 else (40.0 if e == 3 else e + 5.0))
        for e in range(1, 13)])
    folders["expert_breakout"] = write_run(tmp_path / "expert_breakout", "expert", ["breakout"], [
        epoch_row(e, "breakout", "dqn", 10.0 * e, 10.0 * e + 5) for e in range(1, 4)])
    amn_rows = []
    for e in range(1, 13):
        amn_rows.append(epoch_row(e, "pong", "amn", e / 2, e / 2 + 1, agreement=e / 20))
        amn_rows.append(epoch_row(e, "breakout", "amn", 2.0 * e, 2.0 * e + 3, agreement=None if e == 12 else e / 10))
        if e % 4 == 0:
            amn_rows.append(epoch_row(e, "pong", "expert", 90.0 + 10 * e // 4, 100.0 + 10 * e // 4))
            expert_breakout = NAN if e == 12 else 40.0 + 10 * e // 4
            amn_rows.append(epoch_row(e, "breakout", "expert", expert_breakout, expert_breakout + 5))
    folders["amn"] = write_run(tmp_path / "amn", "amn", ["pong", "breakout"], amn_rows, beta=0.0,
                               architecture="nature")
    folders["mdqn"] = write_run(tmp_path / "mdqn", "mdqn", ["pong", "breakout"], [
        row for e in range(1, 13)
        for row in (epoch_row(e, "pong", "mdqn", e - 1.0, float(e)), epoch_row(e, "breakout", "mdqn", NAN, NAN))])
    transfer_means = {"random": [1, 2, 3, 4, 5, 6, 7, 8], "amn-policy": [4, 4, 4, 4, 1, 1, 1, NAN],
                      "amn-feature": [0, 0, 0, 0, 10, 10, 10]}
    for init, means in transfer_means.items():
        folders[init] = write_run(tmp_path / f"transfer_{init}", "transfer", ["gopher"], [
            epoch_row(e, "gopher", "dqn", float(m), float(m) + 1) for e, m in enumerate(means, start=1)], init=init)
    return folders


def table1_by_game(rows):
    return {row.game: row for row in rows}


def test_table1_numbers_with_expert_runs(runs):
    rows = table1_by_game(table1(load_runs([runs[k] for k in ("expert_pong", "expert_breakout", "amn", "mdqn")])))
    assert list(rows) == ["pong", "breakout"]
    pong, breakout = rows["pong"], rows["breakout"]
    assert pong.dqn.mean == pytest.approx(6.6) and pong.dqn.max == 40.0
    assert pong.dqn.mean_epochs == (2, 3, 4, 5, 6, 7, 8, 9, 10, 12) and pong.dqn_source == "expert_pong"
    assert pong.amn.mean == pytest.approx(3.75) and pong.amn.max == 7.0
    assert pong.agreement == pytest.approx(0.375)
    assert pong.amn_dqn_percent == pytest.approx(100 * 3.75 / 6.6)
    assert pong.baselines["mdqn"].mean == pytest.approx(6.5) and pong.baselines["mdqn"].max == 12.0
    assert list(pong.baselines) == ["mdqn"]   # no MCDQN run given, no MCDQN columns
    assert breakout.dqn.mean == pytest.approx(20.0) and breakout.dqn.max == 35.0
    assert breakout.dqn.mean_epochs == (1, 2, 3)
    assert breakout.amn.mean == pytest.approx(15.0) and breakout.amn.max == 27.0
    assert breakout.agreement == pytest.approx(0.65)
    assert breakout.amn_dqn_percent == pytest.approx(75.0)
    assert math.isnan(breakout.baselines["mdqn"].mean) and math.isnan(breakout.baselines["mdqn"].max)


def test_table1_falls_back_to_the_amn_runs_expert_tests(runs):
    rows = table1_by_game(table1(load_runs([runs["amn"], runs["expert_pong"]])))
    assert rows["pong"].dqn.mean == pytest.approx(6.6)                     # the expert run wins
    assert rows["breakout"].dqn.mean == pytest.approx(55.0) and rows["breakout"].dqn.max == 65.0
    assert rows["breakout"].dqn_source == "amn (expert tests)"
    assert rows["breakout"].amn_dqn_percent == pytest.approx(100 * 15 / 55)


def test_table1_last_epochs_and_non_positive_dqn(tmp_path):
    write_run(tmp_path / "e", "expert", ["pong"], [epoch_row(e, "pong", "dqn", -21.0 + e, -20.0 + e)
                                                   for e in range(1, 6)])
    write_run(tmp_path / "a", "amn", ["pong"], [epoch_row(e, "pong", "amn", float(e), float(e)) for e in range(1, 6)])
    (row,) = table1(load_runs([tmp_path / "e", tmp_path / "a"]), last=2)
    assert row.amn.mean == 4.5 and row.amn.mean_epochs == (4, 5)
    assert row.dqn.mean == -16.5
    assert math.isnan(row.amn_dqn_percent)   # a ratio to a negative score means nothing


def test_table1_markdown_and_csv(runs, tmp_path):
    markdown, files = write_report(load_runs([runs[k] for k in ("expert_pong", "expert_breakout", "amn", "mdqn")]),
                                   tmp_path / "out")
    lines = markdown.splitlines()
    assert lines[2] == ("| game | DQN mean | DQN max | AMN mean | AMN max | AMN/DQN mean | agreement | MDQN mean "
                        "| MDQN max | paper AMN/DQN |")
    assert lines[4] == "| pong | 6.6 | 40 | 3.75 | 7 | 56.8% | 0.375 | 6.5 | 12 | 78.0% |"
    assert lines[5] == "| breakout | 20 † | 35 | 15 | 27 | 75.0% | 0.650 |  |  | 127.0% |"
    assert "† averaged over fewer than 10 test epochs" in markdown
    assert "breakout DQN over 3 (epochs 1-3)" in markdown
    assert "pong: expert_pong" in markdown and "breakout: expert_breakout" in markdown
    assert (tmp_path / "out" / "table1.md").read_text() == markdown
    with open(tmp_path / "out" / "table1.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [r["game"] for r in table] == ["pong", "breakout"]
    assert float(table[0]["dqn_mean"]) == pytest.approx(6.6) and float(table[0]["amn_dqn_percent"]) == \
        pytest.approx(100 * 3.75 / 6.6)
    assert table[0]["dqn_mean_epochs"] == "10" and table[1]["dqn_mean_epochs"] == "3"
    assert table[1]["mdqn_mean"] == "" and table[1]["mdqn_max"] == ""   # NaN is an empty cell
    assert float(table[1]["agreement"]) == pytest.approx(0.65)
    assert "mcdqn_mean" not in table[0]
    assert not (tmp_path / "out" / "table2.md").exists()                 # no transfer runs given
    assert {f.name for f in files} == {"table1.md", "table1.csv", "amn_pong.png", "amn_breakout.png"}


def test_table1_with_two_amn_runs_has_a_row_per_run_and_game(runs, tmp_path):
    write_run(tmp_path / "amn_feature", "amn", ["pong"], [epoch_row(e, "pong", "amn", 2.0, 3.0) for e in range(1, 13)],
              beta=0.01, frames_per_game=True)
    rows = table1(load_runs([runs["expert_pong"], runs["amn"], tmp_path / "amn_feature"]))
    assert [(r.amn_run, r.game) for r in rows] == [("amn", "pong"), ("amn", "breakout"), ("amn_feature", "pong")]
    assert rows[2].amn.mean == 2.0 and rows[2].dqn.mean == pytest.approx(6.6) and math.isnan(rows[2].agreement)
    lines = table1_markdown(rows).splitlines()
    assert lines[2].startswith("| game | AMN run | DQN mean |")
    assert lines[6] == "| pong | amn_feature | 6.6 | 40 | 2 | 3 | 30.3% |  | 78.0% |"


def test_table2_numbers_and_bold_best(runs):
    rows = table2(load_runs([runs[i] for i in ("random", "amn-policy", "amn-feature")]), every=1_000_000)
    assert [(r.game, r.frames) for r in rows] == [("gopher", 1_000_000), ("gopher", 2_000_000)]
    assert rows[0].reward == {"random": 2.5, "amn-policy": 4.0, "amn-feature": 0.0}
    assert rows[1].reward["random"] == 6.5 and rows[1].reward["amn-policy"] == 1.0
    assert math.isnan(rows[1].reward["amn-feature"])
    lines = table2_markdown(rows).splitlines()
    assert lines[4] == "| frames | Random | AMN-policy | AMN-feature |"
    assert lines[6] == "| 1M | 2.5 | **4** | 0 |"
    assert lines[7] == "| 2M | **6.5** | 1 |  |"

    half = table2(load_runs([runs[i] for i in ("random", "amn-policy", "amn-feature")]), every=500_000)
    assert [r.frames for r in half] == [500_000, 1_000_000, 1_500_000, 2_000_000]
    assert [r.reward["random"] for r in half] == [1.5, 3.5, 5.5, 7.5]
    assert [r.reward["amn-policy"] for r in half] == [4.0, 4.0, 1.0, 1.0]   # the NaN epoch is left out
    assert [r.reward["amn-feature"] for r in half[:3]] == [0.0, 0.0, 10.0]


def test_table2_ties_are_all_bold_and_missing_inits_are_left_out(tmp_path):
    for init in ("random", "amn-policy"):
        write_run(tmp_path / init, "transfer", ["krull"], [epoch_row(1, "krull", "dqn", 3.0, 3.0)], init=init)
    markdown = table2_markdown(table2(load_runs([tmp_path / "random", tmp_path / "amn-policy"]), every=250_000),
                               every=250_000)
    assert "| frames | Random | AMN-policy |" in markdown and "| 250k | **3** | **3** |" in markdown


def test_write_report_files_and_pngs(runs, tmp_path):
    out = tmp_path / "out"
    markdown, files = write_report(load_runs(list(runs.values())), out, every=1_000_000)
    assert markdown.index("## Table 1") < markdown.index("## Table 2")
    names = {f.name for f in files}
    assert names == {"table1.md", "table1.csv", "table2.md", "table2.csv", "amn_pong.png", "amn_breakout.png",
                     "transfer_gopher.png"}
    with open(out / "table2.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert table[0] == {"game": "gopher", "frames": "1000000", "random": "2.5", "amn-policy": "4.0",
                        "amn-feature": "0.0"}
    assert table[1]["amn-feature"] == ""
    from PIL import Image

    for name in ("amn_pong.png", "amn_breakout.png", "transfer_gopher.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 5_000
        with Image.open(out / name) as image:
            image.verify()
            assert image.size == (640, 420)


def test_resumed_run_keeps_the_last_row_of_a_repeated_epoch(tmp_path):
    write_run(tmp_path / "e", "expert", ["pong"], [epoch_row(1, "pong", "dqn", 1.0, 1.0),
                                                   epoch_row(2, "pong", "dqn", 5.0, 5.0),
                                                   epoch_row(2, "pong", "dqn", 7.0, 7.0)])
    curve = load_run(tmp_path / "e").curve("pong")
    assert curve.epoch.tolist() == [1, 2] and curve.mean.tolist() == [1.0, 7.0]


def test_errors(runs, tmp_path):
    with pytest.raises(ValueError, match="no runs given"):
        load_runs([])
    with pytest.raises(FileNotFoundError, match=r"'.*nowhere' is not a run folder \(no run.json\)"):
        load_run(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"its subfolders amn, expert_breakout.* are: pass them"):
        load_run(tmp_path)
    write_run(tmp_path / "odd", "ppo", ["pong"], [])
    with pytest.raises(ValueError, match="unknown kind 'ppo' in run.json; known kinds are expert, amn"):
        load_run(tmp_path / "odd")
    write_run(tmp_path / "empty", "amn", ["pong"], [])
    with pytest.raises(ValueError, match=r"'.*empty' \(amn\) has no test rows for policy 'amn' in test.csv"):
        load_run(tmp_path / "empty")
    write_run_info(tmp_path / "no_csv", kind="expert", games=["pong"])
    with pytest.raises(FileNotFoundError, match=r"'.*no_csv' has no test.csv"):
        load_run(tmp_path / "no_csv")
    write_run(tmp_path / "garbled", "expert", ["pong"], [{**epoch_row(1, "pong", "dqn", 1.0, 1.0), "epoch": "one"}])
    with pytest.raises(ValueError, match=r"test.csv' line 2 is not a test row \(ValueError: invalid literal"):
        load_run(tmp_path / "garbled")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "run.json").write_text("{kind")
    with pytest.raises(ValueError, match="is not valid JSON"):
        load_run(tmp_path / "broken")
    write_run(tmp_path / "no_init", "transfer", ["gopher"], [epoch_row(1, "gopher", "dqn", 1.0, 1.0)])
    with pytest.raises(ValueError, match="init must be one of random, amn-policy, amn-feature, got init=None"):
        load_run(tmp_path / "no_init")
    write_run(tmp_path / "two", "expert", ["pong", "boxing"], [epoch_row(1, "pong", "dqn", 1.0, 1.0)])
    with pytest.raises(ValueError, match="expert runs play one game, got games=\\['pong', 'boxing'\\]"):
        load_run(tmp_path / "two")
    with pytest.raises(ValueError, match="two expert runs for game 'pong'"):
        table1(load_runs([runs["expert_pong"], runs["expert_pong"], runs["amn"]]))
    with pytest.raises(ValueError, match="two transfer runs for game 'gopher' with init 'random'"):
        table2(load_runs([runs["random"], runs["random"]]))
    with pytest.raises(ValueError, match="end at 1.75M frames, before the first mark \\(2M\\)"):
        table2(load_runs([runs["amn-feature"]]), every=2_000_000)
    with pytest.raises(ValueError, match="every must be a positive number of frames, got 0"):
        table2(load_runs([runs["random"]]), every=0)
    with pytest.raises(ValueError, match="last must be a positive number of test epochs, got 0"):
        table1(load_runs([runs["amn"]]), last=0)
    with pytest.raises(ValueError, match=r"the runs given \(mdqn\) support no table"):
        write_report(load_runs([runs["mdqn"]]), tmp_path / "out")


def test_expert_runs_alone_make_the_experts_table_and_curves(runs, tmp_path):
    markdown, files = write_report(load_runs([runs["expert_pong"], runs["expert_breakout"]]), tmp_path / "out")
    assert "## Experts (test reward)" in markdown
    assert {f.name for f in files} == {"experts.md", "experts.csv", "expert_pong.png", "expert_breakout.png",
                                       "experts.png", "epochs_expert_pong.md", "epochs_expert_breakout.md"}
    rows = {r["game"]: r for r in read_csv(tmp_path / "out" / "experts.csv")}
    curve = load_run(runs["expert_pong"]).curve("pong")
    last = curve.mean[-3:]
    assert float(rows["pong"]["last_mean"]) == pytest.approx(float(np.mean(last[np.isfinite(last)])))
    assert float(rows["pong"]["best_max"]) == pytest.approx(float(np.nanmax(curve.max)))
    assert rows["pong"]["algorithm"] == "dqn" and int(rows["pong"]["frames"]) == int(curve.frames[-1])
    # beside each expert: published random play and the paper's DQN (no shipped record: no measured random)
    assert float(rows["pong"]["published_random"]) == -20.7 and float(rows["breakout"]["paper_dqn_mean"]) == 273.15
    assert rows["pong"]["random_mean"] == "" and "| -20.7 | 19.581 |" in markdown


def cli(*args):
    return run_cli("report", *args, check=False, timeout=120)


def test_cli_prints_and_writes_the_tables(runs, tmp_path):
    out = tmp_path / "report"
    proc = cli(*runs.values(), "--out", out, "--every", "500k")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (out / "table1.md").read_text() + "\n" + (out / "table2.md").read_text()
    assert "| 500k | 1.5 | **4** | 0 |" in proc.stdout and "| 1.5M | 5.5 | 1 | **10** |" in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == ["amn_breakout.png", "amn_pong.png", "table1.csv", "table1.md",
                                                     "table2.csv", "table2.md", "transfer_gopher.png"]


@pytest.mark.parametrize("args,message", [
    ([], "the following arguments are required: RUN_DIR"),
    (["missing_run"], "'missing_run' is not a run folder (no run.json)"),
    (["{odd}"], "unknown kind 'ppo'"),
    (["{empty}"], "has no test rows for policy 'amn'"),
    (["{random}", "--every", "often"], "--every must be a count like 10M or 250k, got 'often'"),
    (["{random}", "--every", "0"], "--every must be > 0, got '0'"),
    (["{amn}", "--last", "0"], "--last must be >= 1, got 0"),
])
def test_cli_errors(args, message, runs, tmp_path, capsys):
    # In-process (main() is what the entry point runs): a subprocess per case would mostly time torch's import.
    write_run(tmp_path / "odd", "ppo", ["pong"], [])
    write_run(tmp_path / "empty", "amn", ["pong"], [])
    folders = {**{k: str(v) for k, v in runs.items()}, "odd": tmp_path / "odd", "empty": tmp_path / "empty"}
    with pytest.raises(SystemExit) as exit_info:
        main(["report", *[a.format(**folders) for a in args], "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_epochs_table_has_each_test_epoch_with_its_wall_clock(runs, tmp_path):
    # progress.csv: 60 s per 250k frames, so the epoch at 500k frames ends 2.0 minutes in (interpolated)
    with open(runs["expert_breakout"] / "progress.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["frames", "wall_s"])
        writer.writerows([(250_000 * k, 60.0 * k) for k in (1, 3)])
    _, files = write_report(load_runs([runs["expert_breakout"], runs["expert_pong"]]), tmp_path / "out")
    text = (tmp_path / "out" / "epochs_expert_breakout.md").read_text()
    assert text.splitlines()[4:] == ["| 1 | 0.25M | 1.0 | 10 | 15 | 3 |", "| 2 | 0.5M | 2.0 | 20 | 25 | 3 |",
                                     "| 3 | 0.75M | 3.0 | 30 | 35 | 3 |"]
    pong = (tmp_path / "out" / "epochs_expert_pong.md").read_text().splitlines()
    assert "| 11 | 2.75M |  |  |  | 0 |" in pong and "| 3 | 0.75M |  | 3 | 40 | 3 |" in pong   # no progress.csv
    # two runs whose folders share a name both get their table
    twin = write_run(tmp_path / "other" / "expert_breakout", "expert", ["breakout"],
                     [epoch_row(1, "breakout", "dqn", 1.0, 2.0)])
    _, files = write_report(load_runs([runs["expert_breakout"], twin]), tmp_path / "out2")
    assert {"epochs_expert_breakout.md", "epochs_expert_breakout_2.md"} <= {f.name for f in files}
