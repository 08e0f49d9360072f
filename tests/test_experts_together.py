"""Experts trained together (train-expert --games): one pool, one stacked update, and every expert exactly
what it would be trained alone; games of 3 to 18 actions; per-game run folders loadable alone; resume;
the command line, errors and torchrun shares."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from actormimic_fast.agents.distill import load_experts
from actormimic_fast.agents.dqn import DQNConfig, load_expert, train_expert, train_experts
from actormimic_fast.files.checkpoint import load_checkpoint
from actormimic_fast.run.evaluation import evaluate, greedy_act
from actormimic_fast.files.run_info import read_run_info
from actormimic_fast.files.run_logs import read_csv
from cli_runner import ROOT, run_cli
from test_run_loop import TIMING_COLUMNS, _flatten

SHORT = dict(frames_per_game=1_600, replay_capacity=2_000, learning_starts=100, batch_size=8, target_update=20,
             test_epoch_frames=400, train_epoch_frames=800, checkpoint_every=800, log_every=400,
             epsilon_decay_frames=800, epsilon_end=0.5, envs_per_game=2, device="cpu", progress=False,
             tensorboard=False, torch_threads=1, lockstep=True)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_games_trained_together_are_the_games_trained_alone(tmp_path):
    """The acid test: same weights (float tolerance; on the CPU, where each expert runs its own kernels,
    they come out bit for bit equal), optimiser state, counters, log rows and test rewards."""
    games = ["breakout", "pong", "boxing"]                       # 4, 6 and 18 actions
    together = train_experts(DQNConfig(out=str(tmp_path / "together"), **SHORT), games)
    for game in games:
        alone = train_expert(DQNConfig(game=game, out=str(tmp_path / "alone" / game), **SHORT))
        a = load_checkpoint(tmp_path / "alone" / game / "checkpoint.pt")
        b = load_checkpoint(tmp_path / "together" / game / "checkpoint.pt")
        assert {k: v for k, v in a["counters"].items() if k != "wall_s"} == \
               {k: v for k, v in b["counters"].items() if k != "wall_s"}, game
        assert a["meta"] == b["meta"] and a["rng"]["numpy"] == b["rng"]["numpy"]
        for key in ("online", "target"):
            for name, tensor in a[key].items():
                torch.testing.assert_close(b[key][name], tensor, rtol=1e-5, atol=1e-6, msg=f"{game} {key}.{name}")
        flat_a, flat_b = _flatten(a["optimizer"]["state"]), _flatten(b["optimizer"]["state"])
        assert flat_a.keys() == flat_b.keys()
        for name in flat_a:
            torch.testing.assert_close(flat_b[name], flat_a[name], rtol=1e-5, atol=1e-7, msg=f"{game} {name}")
        assert {k: v for k, v in a["config"].items() if k != "out"} == {k: v for k, v in b["config"].items()
                                                                       if k != "out"}
        for table in ("progress", "episodes", "test"):
            rows_a = read_csv(tmp_path / "alone" / game / f"{table}.csv")
            rows_b = read_csv(tmp_path / "together" / game / f"{table}.csv")
            assert len(rows_a) == len(rows_b) > 0 or table == "episodes", (game, table)
            for row_a, row_b in zip(rows_a, rows_b):
                for column in row_a:
                    if column in ("loss", "q_mean"):
                        assert float(row_a[column]) == pytest.approx(float(row_b[column]), rel=1e-4, nan_ok=True)
                    elif column not in TIMING_COLUMNS:
                        assert row_a[column] == row_b[column], (game, table, column)
        assert together[game]["updates"] == alone["updates"] and together[game]["frames"] == alone["frames"]
        assert together[game]["last_test"] == alone["last_test"] and alone["last_test"]["epoch"] >= 1, game
        info_alone, info_together = (read_run_info(tmp_path / kind / game) for kind in ("alone", "together"))
        segments = info_alone.pop("segments"), info_together.pop("segments")
        assert info_alone == info_together
        assert [[s["frames"] for s in seg] for seg in segments] == [[0], [0]]   # when: the only difference


def test_games_of_3_to_18_actions_in_one_run_give_checkpoints_that_load_alone(tmp_path):
    games = {"skiing": 3, "breakout": 4, "pong": 6, "boxing": 18}
    cfg = DQNConfig(out=str(tmp_path), **{**SHORT, "frames_per_game": 800, "learning_starts": 40, "test_epoch_frames": 0})
    summaries = train_experts(cfg, list(games))
    assert set(summaries) == set(games)
    for game, num_actions in games.items():
        network, meta = load_expert(tmp_path / game / "checkpoint.pt", game=game)
        assert meta["num_actions"] == num_actions == network.head.out_features
        with pytest.raises(ValueError, match=f"was made for game='{game}', not game='seaquest'"):
            load_expert(tmp_path / game / "checkpoint.pt", game="seaquest")
        result = evaluate(greedy_act(network, meta["actions"]), [game], frames_per_game=200, seed=1)[game]
        assert result.frames == 200                    # its greedy actions are legal in its game
        rows = read_csv(tmp_path / game / "episodes.csv")
        assert all(r["game"] == game for r in rows)
        assert summaries[game]["frames"] == 800 and summaries[game]["agent_steps"] == 200
    # the experts of a together run are what distillation takes
    experts = load_experts([str(tmp_path / g / "checkpoint.pt") for g in games])
    assert experts.games == list(games)


def test_a_together_run_resumes_every_game_and_refuses_a_partial_set(tmp_path):
    cfg = DQNConfig(out=str(tmp_path), **{**SHORT, "frames_per_game": 800, "learning_starts": 40})
    first = train_experts(cfg, ["breakout", "pong"])
    resumed = train_experts(cfg.replace(frames_per_game=1_200), ["breakout", "pong"], resume=True)
    for game in ("breakout", "pong"):
        assert resumed[game]["frames"] == 1_200 and resumed[game]["resumes"] == 1
        assert resumed[game]["updates"] > first[game]["updates"]
        assert load_checkpoint(tmp_path / game / "checkpoint.pt")["counters"]["frames"] == 1_200
    with pytest.raises(ValueError, match=r"checkpoints exist in .*breakout.* but not in .*boxing"):
        train_experts(cfg.replace(frames_per_game=1_600), ["breakout", "boxing"], resume=True)
    with pytest.raises(ValueError, match="games must be distinct"):
        train_experts(cfg, ["pong", "Pong"])


def test_command_line_writes_a_folder_per_game_and_reports_errors(tmp_path):
    args = ["train-expert", "--games", "breakout,pong", "--out", tmp_path, "--frames", "800", "--num-envs", "1",
            "--replay-capacity", "2k", "--learning-starts", "40", "--batch-size", "8", "--test-epoch-frames", "200",
            "--train-epoch-frames", "400", "--device", "cpu", "--no-progress", "--no-tensorboard",
            "--torch-threads", "1"]
    lines = run_cli(*args).stdout.strip().splitlines()
    summaries = [json.loads(line) for line in lines]
    assert [s["game"] for s in summaries] == ["breakout", "pong"] and all(s["frames"] == 800 for s in summaries)
    for game in ("breakout", "pong"):
        folder = tmp_path / game
        for name in ("checkpoint.pt", "progress.csv", "episodes.csv", "test.csv", "run.json"):
            assert (folder / name).is_file(), (game, name)
        assert [r["game"] for r in read_csv(folder / "test.csv")] == [game, game]
    resumed = run_cli(*args[:-8], "--frames", "1200", "--resume", "--device", "cpu", "--no-progress",
                      "--no-tensorboard").stdout.strip().splitlines()
    assert [json.loads(line)["frames"] for line in resumed] == [1_200, 1_200]
    for game in ("breakout", "pong"):       # run.json traces both segments to their command, commit and CPU
        segments = read_run_info(tmp_path / game)["segments"]
        assert [s["frames"] for s in segments] == [0, 800]
        assert "--resume" not in segments[0]["command"] and "--resume" in segments[1]["command"]
        for segment in segments:
            assert segment["command"].startswith("actormimic-fast train-expert --games breakout,pong")
            assert segment["machine"]["cores"] >= 1 and segment["torch"] == torch.__version__
            assert "commit" in segment and segment["started"].endswith("Z")
    for bad, message in ((["--games", "pong,pongg"], "unknown game 'pongg'"),
                         (["--games", "pong,boxing,Pong"], "--games must name distinct games"),
                         (["--games", " , "], "--games must list games")):
        proc = run_cli("train-expert", *bad, "--out", tmp_path / "bad", check=False)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_under_torchrun_each_process_trains_its_share_together(tmp_path):
    """torchrun sets RANK / WORLD_SIZE; experts need no process group, so two plain processes stand in."""
    args = [sys.executable, "-m", "actormimic_fast.cli", "train-expert", "--games", "breakout,pong,boxing",
            "--out", str(tmp_path), "--frames", "400", "--learning-starts", "1000", "--test-epoch-frames", "0",
            "--device", "cpu", "--no-progress", "--no-tensorboard", "--torch-threads", "1"]
    procs = [subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=str(ROOT), RANK=str(r), WORLD_SIZE="2",
                                       LOCAL_RANK=str(r)))
             for r in range(2)]
    outputs = [p.communicate(timeout=240) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    trained = [[json.loads(line)["game"] for line in out.strip().splitlines()] for out, _ in outputs]
    assert trained == [["breakout", "boxing"], ["pong"]]
    assert all((tmp_path / g / "checkpoint.pt").is_file() for g in ("breakout", "pong", "boxing"))
