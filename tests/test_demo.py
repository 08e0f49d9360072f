"""`make demo` runs the whole pipeline (experts, distillation, report); CI runs it with --quick budgets."""

import subprocess
import sys

from PIL import Image

from actormimic_fast.files.checkpoint import load_checkpoint
from actormimic_fast.apps.demo import BUDGETS, DEMO_GAMES
from actormimic_fast.files.run_info import read_run_info
from actormimic_fast.files.run_logs import read_csv


def test_quick_demo_runs_the_pipeline_end_to_end(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "actormimic_fast.apps.demo", "--quick", "--no-progress", "--out", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for step in ("Step 1/3", "Step 2/3", "Step 3/3", "Done."):
        assert step in proc.stdout
    for game in DEMO_GAMES:       # one expert per game, trained for the budget
        assert (out / "experts" / game / "checkpoint.pt").is_file()
        counters = load_checkpoint(out / "experts" / game / "checkpoint.pt")["counters"]
        assert counters["frames"] >= BUDGETS["quick"].expert_frames and counters["updates"] > 0
    info = read_run_info(out / "amn")
    assert info["kind"] == "amn" and info["games"] == list(DEMO_GAMES)
    tests = read_csv(out / "amn" / "test.csv")
    assert {(r["game"], r["policy"]) for r in tests} == {(g, p) for g in DEMO_GAMES for p in ("amn", "expert")}
    assert all(0 <= float(r["agreement"]) <= 1 for r in tests if r["policy"] == "amn")
    table = (out / "report" / "table1.md").read_text()
    assert table in proc.stdout   # the table is printed too
    for game in DEMO_GAMES:
        assert game in table
        png = out / "report" / f"amn_{game}.png"
        assert png.stat().st_size > 0
        Image.open(png).verify()


def test_demo_rejects_a_file_as_output(tmp_path):
    path = tmp_path / "a_file"
    path.write_text("x")
    proc = subprocess.run([sys.executable, "-m", "actormimic_fast.apps.demo", "--quick", "--out", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and f"--out must be a folder, got {str(path)!r}" in proc.stderr
