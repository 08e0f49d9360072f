"""Faults a long run meets (issue 16): kill -9 at any moment, also in the middle of a checkpoint write, then
--resume. Nothing is lost beyond the last checkpoint, no partial file is left behind, and the resumed run's
logs read as one run: no duplicated or out-of-order progress rows, no episodes of the discarded segment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from actormimic_fast.files.checkpoint import load_checkpoint
from actormimic_fast.files.run_logs import read_csv
from cli_runner import ROOT, cli_summary

ARGS = ["train-expert", "--game", "breakout", "--num-envs", "2", "--replay-capacity", "6k", "--learning-starts",
        "200", "--batch-size", "8", "--test-epoch-frames", "200", "--train-epoch-frames", "1600", "--log-every", "200",
        "--checkpoint-every", "1600", "--device", "cpu", "--no-progress", "--no-tensorboard", "--torch-threads", "1"]


def start(out: Path, *extra) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "actormimic_fast.cli", *ARGS, "--out", str(out), *extra], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until(proc: subprocess.Popen, condition, timeout: float = 180, poll: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(poll)


def last_progress_frames(out: Path) -> int:
    rows = read_csv(out / "progress.csv") if (out / "progress.csv").exists() else []
    return int(rows[-1]["frames"]) if rows and rows[-1].get("frames", "").isdigit() else 0


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)


def test_after_kill_9_the_resumed_logs_read_as_one_run(tmp_path):
    out = tmp_path / "run"
    proc = start(out, "--frames", "8000")
    # killed after a checkpoint, once more rows than it accounts for have been logged
    wait_until(proc, lambda: (out / "checkpoint.pt").exists() and last_progress_frames(out) >= 2_400)
    kill(proc)
    at_kill = load_checkpoint(out / "checkpoint.pt")["counters"]
    assert last_progress_frames(out) > at_kill["frames"]                     # rows the resumed run writes again
    # only --out and --resume: every setting, the frame budget included, comes from the checkpoint
    summary = cli_summary("train-expert", "--out", out, "--resume", "--no-progress")
    assert summary["frames"] == 8_000 and summary["agent_steps"] == 2_000 and summary["resumes"] == 1
    assert load_checkpoint(out / "checkpoint.pt", expect={"game": "breakout"})["config"]["learning_starts"] == 200
    frames = [int(r["frames"]) for r in read_csv(out / "progress.csv")]
    assert frames == list(range(200, 8_001, 200))                            # once each, in order
    episodes = read_csv(out / "episodes.csv")
    assert len(episodes) == summary["episodes"]                               # the discarded segment's are gone
    assert [int(r["frames"]) for r in episodes] == sorted(int(r["frames"]) for r in episodes)
    assert [int(r["epoch"]) for r in read_csv(out / "test.csv")] == list(range(1, summary["epochs"] + 1))


def test_a_kill_during_a_checkpoint_write_loses_nothing_and_leaves_no_partial_file(tmp_path):
    out = tmp_path / "run"
    partial = lambda: sorted(out.glob(".checkpoint.pt.*.tmp"))        # noqa: E731
    for kill_number in range(2):
        # --save-replay makes each checkpoint tens of MB: the kill lands while it is being written
        proc = start(out, "--frames", "40000", "--save-replay", *(["--resume"] if kill_number else []))
        wait_until(proc, lambda: bool(partial()), poll=0.002)
        kill(proc)
        assert partial()                                                       # the kill left a partial file
        if (out / "checkpoint.pt").exists():
            load_checkpoint(out / "checkpoint.pt")                             # the previous one is intact
    summary = cli_summary(*ARGS, "--out", out, "--frames", "4000", "--resume", "--save-replay")
    assert summary["frames"] >= 4_000 and not partial()                        # stale partial files removed
    assert load_checkpoint(out / "checkpoint.pt")["counters"]["frames"] == summary["frames"]


def test_sigterm_stops_the_run_at_its_next_progress_row_with_a_checkpoint_and_resume_finishes(tmp_path):
    """kill <pid> (SIGTERM, what a session's end or a scheduler sends) loses nothing: the run writes a checkpoint
    where it stopped, exits cleanly, and --resume goes on from there to the end."""
    out = tmp_path / "run"
    proc = start(out, "--frames", "1M")
    wait_until(proc, lambda: last_progress_frames(out) >= 800)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "SIGTERM: stopping at" in stderr and "--resume continues" in stderr
    stopped = load_checkpoint(out / "checkpoint.pt")["counters"]["frames"]
    assert 800 <= stopped < 1_000_000
    assert stopped == max(int(r["frames"]) for r in read_csv(out / "progress.csv"))   # at its last progress row
    summary = cli_summary(*ARGS, "--frames", str(stopped + 1_600), "--out", str(out), "--resume")
    assert summary["frames"] >= stopped + 1_600 and summary["resumes"] == 1
