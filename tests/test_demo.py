"""`make demo` distils the shipped experts (experts/table1), reports and films the AMN; CI runs it with --quick."""

import subprocess
import sys

from PIL import Image

from actormimic_fast.agents.amn_shipping import ship_amn
from actormimic_fast.apps.demo import BUDGETS, SHIPPED_EXPERTS, VIDEO, shipped_experts
from actormimic_fast.files.run_info import read_run_info
from actormimic_fast.files.run_logs import read_csv

import pytest


def test_quick_demo_distils_the_shipped_experts_end_to_end(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "actormimic_fast.apps.demo", "--quick", "--no-progress", "--out", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for step in ("Step 1/3", "Step 2/3", "Step 3/3", "Done."):
        assert step in proc.stdout
    games = [p.parent.name for p in shipped_experts(SHIPPED_EXPERTS)]
    assert len(games) >= 2 and all(f"{g}:" in proc.stdout for g in games)     # each expert's shipped score
    info = read_run_info(out / "amn")
    assert info["kind"] == "amn" and info["games"] == games
    assert read_run_info(out / "amn")["segments"][0]["frames"] == 0
    tests = read_csv(out / "amn" / "test.csv")
    assert {(r["game"], r["policy"]) for r in tests} == {(g, p) for g in games for p in ("amn", "expert")}
    assert all(0 <= float(r["agreement"]) <= 1 for r in tests if r["policy"] == "amn")
    assert max(int(r["frames"]) for r in tests) >= BUDGETS["quick"].frames_per_game(len(games))
    table = (out / "report" / "table1.md").read_text()
    assert table in proc.stdout   # the table is printed too
    for game in games:
        assert f"| {game} |" in table
        png = out / "report" / f"amn_{game}.png"
        assert png.stat().st_size > 0
        Image.open(png).verify()
    gif = Image.open(out / VIDEO)       # one tile per game, a frame per 2 agent steps
    assert gif.n_frames == BUDGETS["quick"].video_frames // 4 // 2 and gif.size[0] >= 2 * 160

    shipped = ship_amn(out / "amn", tmp_path / "shipped_amn", check_frames=200, fidelity_frames=200)
    proc = subprocess.run([sys.executable, "-m", "actormimic_fast.apps.demo", "--quick", "--no-progress", "--out",
                           str(tmp_path / "again"), "--amn", str(shipped)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Next to it, the shipped AMN" in proc.stdout
    assert (tmp_path / "again" / "shipped_amn_report" / "table1.md").read_text() in proc.stdout


def test_demo_rejects_a_file_as_output_and_a_folder_without_experts(tmp_path):
    path = tmp_path / "a_file"
    path.write_text("x")
    proc = subprocess.run([sys.executable, "-m", "actormimic_fast.apps.demo", "--quick", "--out", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and f"--out must be a folder, got {str(path)!r}" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "actormimic_fast.apps.demo", "--quick", "--experts", str(tmp_path),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and f"--experts must be a folder of shipped experts" in proc.stderr
    assert str(tmp_path) in proc.stderr and not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="none there"):
        shipped_experts(tmp_path / "nowhere")
