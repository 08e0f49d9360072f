"""The overlapped mode (actor and learner on their own threads, --no-lockstep): the replay ratio stays within
the rate limiter's bound at every log row, the learner never samples what the replay cannot serve, and a
run stops cleanly on an error in either thread, on Ctrl-C, and after kill -9 resumes from its checkpoint."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from actormimic_fast.agents import dqn
from actormimic_fast.agents.dqn import DQNConfig, train_expert
from actormimic_fast.files.checkpoint import load_checkpoint
from actormimic_fast.files.run_logs import read_csv
from actormimic_fast.run.loop import MAX_LAG
from actormimic_fast.run.rate_limiter import LearnerFailed
from cli_runner import ROOT, cli_summary

NUM_ENVS = 4


def config(tmp_path, **changes) -> DQNConfig:
    values = dict(game="pong", frames_per_game=4_000, envs_per_game=NUM_ENVS, replay_capacity=4_000, learning_starts=200,
                  target_update=50, test_epoch_frames=0, checkpoint_every=1_000, log_every=400, lockstep=False,
                  out=str(tmp_path / "run"), device="cpu", progress=False, tensorboard=False, torch_threads=1)
    values.update(changes)
    return DQNConfig(**values)


def learner_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "actormimic-learner"]


def test_the_replay_ratio_stays_within_the_bound_at_every_log_row_and_ends_exact(tmp_path):
    cfg = config(tmp_path)
    summary = train_expert(cfg)
    # The same counters as a lockstep run of the same budget: every update earned is run before the end.
    steps = cfg.frames_per_game // 4
    first = -(-cfg.learning_starts // NUM_ENVS) * NUM_ENVS      # agent steps when learning starts
    assert summary["updates"] == (steps - first + NUM_ENVS) // cfg.update_every
    rows = read_csv(tmp_path / "run" / "progress.csv")
    assert len(rows) == cfg.frames_per_game // cfg.log_every
    for row in rows:
        agent_steps = int(row["frames"]) // 4
        earned = max(0, agent_steps - first + NUM_ENVS) / cfg.update_every if agent_steps >= first else 0
        updates = int(row["updates"])
        # never ahead of the ratio; behind by at most max_lag + one actor step's credit + the update in flight
        assert math.floor(earned) - MAX_LAG - NUM_ENVS / cfg.update_every - 1 <= updates <= math.floor(earned), row
    assert not learner_threads()


def test_the_learner_never_samples_before_every_game_can_serve_a_batch(tmp_path, monkeypatch):
    seen = []
    original = dqn.ExpertDQN.sample

    def checked(self, replay, out):
        seen.append(replay.num_transitions(0))
        return original(self, replay, out)

    monkeypatch.setattr(dqn.ExpertDQN, "sample", checked)
    cfg = config(tmp_path, frames_per_game=2_400, batch_size=32, learning_starts=0)
    train_expert(cfg)
    assert seen and min(seen) >= cfg.batch_size


def test_an_error_in_the_learner_thread_stops_the_run_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    original, calls = dqn.ExpertDQN.update, []

    def failing(self, batch):
        calls.append(1)
        if len(calls) == 60:
            raise FloatingPointError("injected in the learner")
        return original(self, batch)

    monkeypatch.setattr(dqn.ExpertDQN, "update", failing)
    start = time.perf_counter()
    with pytest.raises(LearnerFailed, match="injected in the learner") as info:
        train_expert(config(tmp_path, frames_per_game=40_000))
    assert isinstance(info.value.__cause__, FloatingPointError)
    assert time.perf_counter() - start < 120 and not learner_threads()
    payload = load_checkpoint(tmp_path / "run" / "checkpoint.pt")     # the last one written is intact
    assert 0 < payload["counters"]["frames"] < 40_000


def test_an_error_in_the_actor_stops_the_learner_thread(tmp_path, monkeypatch):
    original, calls = dqn.ExpertDQN.act, []

    def failing(self, network, obs, env_ids, frames):
        calls.append(1)
        if len(calls) == 150:
            raise KeyError("injected in the actor")
        return original(self, network, obs, env_ids, frames)

    monkeypatch.setattr(dqn.ExpertDQN, "act", failing)
    with pytest.raises(KeyError, match="injected in the actor"):
        train_expert(config(tmp_path, frames_per_game=40_000))
    assert not learner_threads()


# -- as a user would: the command line, interrupted ----------------------------------------------------
ARGS = ["train-expert", "--game", "pong", "--num-envs", str(NUM_ENVS), "--replay-capacity", "4k",
        "--learning-starts", "200", "--target-update", "50", "--test-epoch-frames", "0", "--log-every", "400",
        "--checkpoint-every", "800", "--no-lockstep", "--device", "cpu", "--no-progress", "--no-tensorboard",
        "--torch-threads", "1"]


def start_cli(out, frames: str) -> subprocess.Popen:
    """The command as a user starts it from a terminal. SIGINT goes back to its default in the child: a
    suite started in the background by a non-interactive shell inherits SIGINT ignored, and Python then
    installs no KeyboardInterrupt handler, so Ctrl-C would do nothing (the cause of this test's timeouts)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-X", "faulthandler", "-m", "actormimic_fast.cli", *ARGS, "--frames", frames,
                             "--out", str(out)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for_checkpoint_with_updates(proc: subprocess.Popen, path, timeout: float = 180) -> None:
    """Until a checkpoint written after learning started exists (the learner thread is busy by then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if path.exists():
            try:
                if load_checkpoint(path)["counters"]["updates"] > 0:
                    return
            except ValueError:     # caught between a write and its rename: never, with atomic writes
                raise
        time.sleep(0.2)
    raise AssertionError("no checkpoint with updates was written in time")


def test_ctrl_c_stops_both_threads_promptly_and_keeps_the_checkpoint(tmp_path):
    out = tmp_path / "run"
    proc = start_cli(out, "1M")
    wait_for_checkpoint_with_updates(proc, out / "checkpoint.pt")
    proc.send_signal(signal.SIGINT)
    try:
        _, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)      # faulthandler (-X faulthandler) prints every thread's stack
        try:
            _, stderr = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate()
        raise AssertionError(f"the run did not stop within 60 s of Ctrl-C; its threads:\n{stderr[-8000:]}")
    assert proc.returncode != 0 and "KeyboardInterrupt" in stderr
    assert load_checkpoint(out / "checkpoint.pt")["counters"]["frames"] < 1_000_000


def test_kill_9_then_resume_finishes_the_run(tmp_path):
    out = tmp_path / "run"
    proc = start_cli(out, "6000")
    wait_for_checkpoint_with_updates(proc, out / "checkpoint.pt")
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    killed_at = load_checkpoint(out / "checkpoint.pt")["counters"]
    summary = cli_summary(*ARGS, "--frames", "6000", "--out", out, "--resume")
    assert summary["frames"] == 6_000 and summary["resumes"] == 1 and summary["updates"] > killed_at["updates"]
    payload = load_checkpoint(out / "checkpoint.pt")
    assert payload["counters"]["frames"] == 6_000 and all(torch.isfinite(t).all() for t in payload["online"].values())
