"""The `actormimic-fast` command line through subprocess: a smoke run, evaluate, a killed and resumed run,
errors, torchrun's game-per-process split."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from actormimic_fast.files.checkpoint import load_checkpoint
from actormimic_fast.agents.dqn import DQNConfig
from actormimic_fast.run.processes import ProcessInfo, device_for_process, games_for_process, process_info
from actormimic_fast.files.run_logs import read_csv
from actormimic_fast.cli import main
from cli_runner import run_cli as cli

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--replay-capacity", "5k", "--learning-starts", "500", "--target-update", "100", "--epsilon-decay-frames",
        "4k", "--log-every", "1k", "--device", "cpu", "--torch-threads", "1", "--no-progress"]


def test_train_expert_smoke_with_config_file_then_evaluate_and_record(tmp_path):
    config = tmp_path / "pong.toml"
    config.write_text('game = "pong"\nframes = "4k"\ntrain_epoch_frames = "2k"\ntest_epoch_frames = 400\n'
                      'n_step = 3\n')
    out = tmp_path / "pong"
    proc = cli("train-expert", "--config", config, "--n-step", "2", "--out", out, "--checkpoint-every", "2k",
               *TINY)
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["game"] == "pong" and summary["frames"] == 4_000 and summary["epochs"] == 2
    payload = load_checkpoint(out / "checkpoint.pt", expect={"game": "pong", "architecture": "nature"})
    assert payload["config"]["n_step"] == 2          # the command line overrides the file
    assert payload["config"]["test_epoch_frames"] == 400
    assert len(read_csv(out / "test.csv")) == 2 and len(read_csv(out / "progress.csv")) == 4
    assert any(p.name.startswith("events.out.tfevents") for p in (out / "tb").iterdir())

    gif = tmp_path / "pong.gif"
    proc = cli("evaluate", out / "checkpoint.pt", "--episodes", "1", "--max-frames", "2k", "--record", gif)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["game"] == "pong" and result["frames"] == 2_000
    assert result["episodes"] == 0 and result["mean"] is None and result["partial_return"] <= 0
    from PIL import Image

    assert result["video_frames"] == 500                 # 2,000 frames = 500 agent steps, all of them recorded
    with Image.open(gif) as image:
        # the colour screen and its caption at scale 2; the GIF writer merges identical consecutive frames
        assert 250 <= image.n_frames <= 500 and image.size == (320, 448)


def test_wrong_game_resume_is_rejected(tmp_path):
    out = tmp_path / "run"
    cli("train-expert", "--game", "pong", "--frames", "400", "--out", out, "--test-epoch-frames", "0", *TINY)
    proc = cli("train-expert", "--game", "boxing", "--out", out, "--resume", *TINY, check=False)
    assert proc.returncode != 0
    assert "was made for game='pong', not game='boxing'" in proc.stderr


@pytest.mark.parametrize("args,message", [
    (["train-expert", "--game", "pongg"], "unknown game 'pongg'; valid names are: "),
    (["train-expert", "--frames", "ten"], "frames must be a count like 10M or 250k, got 'ten'"),
    (["train-expert", "--lr", "-1"], "lr must be > 0, got -1.0"),
    (["train-expert", "--batch-size", "many"], "batch_size must be an integer, got 'many'"),
    (["train-expert", "--config", "missing.toml"], "config file 'missing.toml' does not exist"),
    (["train-expert", "--optimizer", "sgd"], "invalid choice: 'sgd'"),
    (["train-expert", "--games", "pong,nope"], "unknown game 'nope'"),
    (["evaluate", "missing.pt"], "checkpoint 'missing.pt' does not exist"),
    (["evaluate", "missing.pt", "--record", "x.avi"], "--record must end in .gif or .mp4"),
])
def test_clear_errors(args, message, capsys):
    # in this process (main() is what the console script runs): a subprocess per case only adds torch's import
    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in args])
    stderr = capsys.readouterr().err
    assert exit_.value.code == 2 and message in stderr, stderr


def test_help_documents_every_setting(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train-expert", "--help"])
    text = capsys.readouterr().out
    assert exit_.value.code == 0
    for name in DQNConfig.field_help():
        assert "--" + name.replace("_", "-") in text


def test_process_split_for_torchrun():
    assert process_info({}) == ProcessInfo(0, 1, 0)
    info = process_info({"RANK": "1", "WORLD_SIZE": "3", "LOCAL_RANK": "1"})
    games = ["pong", "boxing", "breakout", "enduro"]
    assert games_for_process(games, info) == ["boxing"]
    assert games_for_process(games, ProcessInfo(0, 3, 0)) == ["pong", "enduro"]
    assert device_for_process("cpu", info) == "cpu"
    with pytest.raises(ValueError, match="3 processes for 2 game"):
        games_for_process(["pong", "boxing"], info)
    with pytest.raises(ValueError, match="RANK must be an integer, got 'x'"):
        process_info({"RANK": "x"})
    with pytest.raises(ValueError, match="RANK=2 must be < WORLD_SIZE=2"):
        process_info({"RANK": "2", "WORLD_SIZE": "2"})


def test_torchrun_trains_one_game_per_process(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun is not installed next to this Python")
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "actormimic_fast.cli",
                           "train-expert", "--games", "pong,boxing", "--frames", "400", "--out", str(tmp_path),
                           "--test-epoch-frames", "0", *TINY], capture_output=True, text=True, env=env,
                          timeout=240, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    for game in ("pong", "boxing"):
        payload = load_checkpoint(tmp_path / game / "checkpoint.pt", expect={"game": game})
        assert payload["counters"]["frames"] == 400
        assert not math.isnan(payload["counters"]["wall_s"])
