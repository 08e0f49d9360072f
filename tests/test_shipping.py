"""ship-expert: a tiny real run -> a shipped folder that loads like any expert, acts like the float32 network and
records where it came from; bad input refused with the argument named."""

import csv
import json
import shutil

import pytest
import torch

from actormimic_fast.agents.amn_shipping import AMN_FILE, amn_agreement, read_shipped_amn, sha256, ship_amn
from actormimic_fast.agents.distill import DistillConfig, action_masks, distill, load_amn
from actormimic_fast.agents.dqn import load_expert
from actormimic_fast.cli import main
from actormimic_fast.agents.pqn import PQNConfig, train_pqn_expert
from actormimic_fast.agents.shipping import EXPERT_FILE, play_greedy, read_shipped, ship_expert
from actormimic_fast.files.checkpoint import load_checkpoint, save_checkpoint
from actormimic_fast.report import load_runs, write_report

from cli_runner import ROOT, run_cli

SHIPPED_EXPERTS = ROOT / "experts" / "table1"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A 3.2k-frame PQN Pong expert with two test epochs (trained in two segments: a fresh start, a resume)."""
    out = tmp_path_factory.mktemp("ship") / "run"
    values = dict(game="pong", envs_per_game=4, rollout_steps=8, epochs=1, minibatches=2, train_epoch_frames=1_600,
                  test_epoch_frames=400, checkpoint_every=1_600, log_every=640, out=str(out), device="cpu",
                  progress=False, tensorboard=False, torch_threads=1)
    train_pqn_expert(PQNConfig(frames_per_game=1_600, **values))
    train_pqn_expert(PQNConfig(frames_per_game=3_200, **values), resume=True)
    return out


def test_a_shipped_expert_loads_as_an_expert_in_16_bits_and_records_its_provenance(tiny_run, tmp_path):
    folder = ship_expert(tiny_run, tmp_path / "pong", check_frames=400, random_seeds=2, fidelity_frames=400,
                         note="a test")
    assert sorted(p.name for p in folder.iterdir()) == ["expert.pt", "progress.csv", "run.json", "test.csv"]
    raw = load_checkpoint(folder / EXPERT_FILE)
    assert set(raw) == {"format", "meta", "online"} and raw["meta"]["weights"] == "float16"
    assert all(t.dtype == torch.float16 for t in raw["online"].values())
    original = load_checkpoint(tiny_run / "checkpoint.pt")
    for key, tensor in original["online"].items():         # float16 rounding only (relative 2^-11)
        torch.testing.assert_close(raw["online"][key].float(), tensor, rtol=2 ** -10, atol=1e-6)

    network, meta = load_expert(folder / EXPERT_FILE, game="pong")   # the normal loader, back in float32
    assert meta["actions"] == original["meta"]["actions"] and next(network.parameters()).dtype == torch.float32
    full, _ = load_expert(tiny_run / "checkpoint.pt")
    obs = torch.randint(0, 256, (16, 4, 84, 84), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(network(obs), full(obs), rtol=1e-2, atol=1e-3)

    shipped = read_shipped(folder)
    assert shipped["frames"] == 3_200 and shipped["algorithm"] == "pqn" and shipped["note"] == "a test"
    assert shipped["settings"]["envs_per_game"] == 4 and shipped["test"]["epochs"] == 2
    assert shipped["fidelity"]["states"] == 100 and shipped["fidelity"]["agreement"] >= 0.9
    assert shipped["random"]["frames"] >= 400 and len(shipped["check"]["random_rewards"]) == 2
    check = shipped["check"]
    assert check["reward"] == play_greedy(network, "pong", meta["actions"], 400, {"frame_skip": 4})
    if check["threshold"] is not None:
        assert max(check["random_rewards"]) < check["threshold"] < check["reward"]
    info = json.loads((folder / "run.json").read_text())
    assert [s["frames"] for s in info["segments"]] == [0, 1_600]       # both training segments, traced
    assert all("commit" in s and s["machine"]["cores"] >= 1 for s in info["segments"])

    markdown, _ = write_report(load_runs([folder]), tmp_path / "report")   # report reads it as a run
    assert "| pong |" in markdown


def test_a_run_started_from_a_shipped_expert_ships_with_that_experts_frames_hours_and_logs(tiny_run, tmp_path):
    first = ship_expert(tiny_run, tmp_path / "first", check_frames=400, random_seeds=1, fidelity_frames=400)
    values = dict(game="pong", envs_per_game=4, rollout_steps=8, epochs=1, minibatches=2, train_epoch_frames=1_600,
                  test_epoch_frames=400, checkpoint_every=1_600, log_every=640, device="cpu", progress=False,
                  tensorboard=False, torch_threads=1)
    again = tmp_path / "again"
    train_pqn_expert(PQNConfig(frames_per_game=1_600, init=str(first), out=str(again), **values))
    assert (again / "init" / "test.csv").read_text() == (first / "test.csv").read_text()
    shutil.rmtree(first)                       # the in-progress folder may be gone by the time this one ships
    with open(again / "progress.csv", "a") as f:    # killed after its last checkpoint: a row the weights never saw
        f.write("1700,99999,1,0.01,0,0,0,0\n")
    second = ship_expert(again, tmp_path / "second", check_frames=400, random_seeds=1, fidelity_frames=400)

    shipped = read_shipped(second)
    assert shipped["frames_this_run"] == 1_600 and shipped["init"]["frames"] == 3_200
    assert shipped["frames"] == 4_800 and shipped["wall_s"] == shipped["init"]["wall_s"] + shipped["wall_s_this_run"]
    assert [s["frames"] for s in shipped["init"]["segments"]] == [0, 1_600]     # how the earlier weights were made
    assert shipped["init"]["shipped"]["from"] == str(tiny_run.resolve())
    with open(second / "test.csv", newline="") as f:
        tests = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in tests] == [1, 2, 3]
    with open(again / "test.csv", newline="") as f:
        own = list(csv.DictReader(f))
    assert len(own) == 1 and tests[2]["frames"] == str(3_200 + int(own[0]["frames"]))
    assert tests[2]["mean"] == own[0]["mean"] and tests[:2] == list(csv.DictReader(open(tiny_run / "test.csv")))
    assert shipped["test"]["epochs"] == 3
    with open(second / "progress.csv", newline="") as f:
        progress = list(csv.DictReader(f))
    frames, walls = [int(r["frames"]) for r in progress], [float(r["wall_s"]) for r in progress]
    with open(again / "progress.csv", newline="") as f:
        own_progress = list(csv.DictReader(f))
    assert frames == sorted(frames) and walls == sorted(walls)
    assert own_progress[-1]["frames"] == "1700" and 3_200 + 1_700 not in frames     # cut at the checkpoint
    assert frames[-1] == 3_200 + int(own_progress[-2]["frames"]) and max(walls) < 99_999
    markdown, _ = write_report(load_runs([second]), tmp_path / "report")
    assert "| pong |" in markdown


def test_ship_expert_refuses_what_it_cannot_ship(tiny_run, tmp_path):
    with pytest.raises(ValueError, match="dtype must be one of"):
        ship_expert(tiny_run, tmp_path / "a", dtype="float8")
    with pytest.raises(ValueError, match="check_frames must be an int >= 1, got 0"):
        ship_expert(tiny_run, tmp_path / "a", check_frames=0)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ship_expert(tmp_path / "nowhere", tmp_path / "a")
    payload = load_checkpoint(tiny_run / "checkpoint.pt")
    payload["online"]["head.bias"] = payload["online"]["head.bias"] + 1e6     # beyond float16's 65504
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("run.json", "test.csv", "progress.csv"):
        (broken / name).write_bytes((tiny_run / name).read_bytes())
    save_checkpoint(broken / "checkpoint.pt", {k: v for k, v in payload.items() if k not in ("format", "meta")},
                    payload["meta"])
    with pytest.raises(ValueError, match="weight 'head.bias' .* does not fit torch.float16; try dtype='bfloat16'"):
        ship_expert(broken, tmp_path / "a")
    assert not (tmp_path / "a").exists()
    with pytest.raises(ValueError, match="is not a shipped expert"):
        read_shipped(tiny_run)


def test_ship_expert_command_line(tiny_run, tmp_path, capsys):
    proc = run_cli("ship-expert", tiny_run, "--out", tmp_path / "pong", "--check-frames", "400", "--fidelity-frames",
                   "400", "--dtype", "bfloat16")
    record = json.loads(proc.stdout)
    assert record["weights"] == "bfloat16" and record["check"]["frames"] == 400 and "settings" not in record
    assert record["command"].startswith("actormimic-fast ship-expert")
    for option in ("--check-frames", "--fidelity-frames"):
        with pytest.raises(SystemExit) as exit_:
            main(["ship-expert", str(tiny_run), "--out", str(tmp_path / "x"), option, "0"])
        assert exit_.value.code == 2 and f"{option} must be >= 1, got '0'" in capsys.readouterr().err


def test_jsonable_turns_every_nan_into_null_so_strict_json_accepts_it():
    from actormimic_fast.files.json_values import jsonable
    nan = float("nan")
    value = {"mean": nan, "games": [{"max": nan, "returns": (1.0, nan)}], "name": "pong", "frames": 3}
    cleaned = jsonable(value)
    assert cleaned == {"mean": None, "games": [{"max": None, "returns": [1.0, None]}], "name": "pong", "frames": 3}
    json.dumps(cleaned, allow_nan=False)  # raises if a NaN slipped through


@pytest.fixture(scope="module")
def tiny_amn(tmp_path_factory):
    """A 2k-frames-per-game AMN distilled from the shipped Pong and Breakout experts (experts/table1)."""
    out = tmp_path_factory.mktemp("amn") / "run"
    experts = ",".join(str(SHIPPED_EXPERTS / game / EXPERT_FILE) for game in ("breakout", "pong"))
    distill(DistillConfig(experts=experts, frames_per_game=2_000, learning_starts=100, train_epoch_frames=1_000,
                          test_epoch_frames=400, log_every=500, checkpoint_every=2_000, replay_capacity=2_000,
                          out=str(out), device="cpu", progress=False, tensorboard=False, torch_threads=1))
    return out


def test_a_shipped_amn_loads_as_an_amn_in_16_bits_and_records_its_experts_and_agreement(tiny_amn, tmp_path):
    folder = ship_amn(tiny_amn, tmp_path / "amn", check_frames=400, fidelity_frames=400, note="a test")
    assert sorted(p.name for p in folder.iterdir()) == ["amn.pt", "progress.csv", "run.json", "test.csv"]
    raw = load_checkpoint(folder / AMN_FILE)
    assert set(raw) == {"format", "meta", "online"} and raw["meta"]["weights"] == "float16"
    assert all(t.dtype == torch.float16 for t in raw["online"].values() if t.is_floating_point())
    network, meta = load_amn(folder / AMN_FILE)                 # the normal loader, float32 again
    full, _ = load_amn(tiny_amn / "checkpoint.pt")
    obs = torch.randint(0, 256, (8, 4, 84, 84), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(network(obs), full(obs), rtol=1e-2, atol=1e-3)

    shipped = read_shipped_amn(folder)
    assert shipped["games"] == meta["games"] == ["breakout", "pong"] and shipped["frames"] == 2_000
    assert shipped["note"] == "a test"
    for game in ("breakout", "pong"):
        expert = shipped["experts"][game]
        assert expert["sha256"] == sha256(SHIPPED_EXPERTS / game / EXPERT_FILE)
        assert expert["shipped"]["test"]["mean_last_3"] == read_shipped(SHIPPED_EXPERTS / game)["test"]["mean_last_3"]
        assert shipped["test"][game]["amn"]["epochs"] == 2 and shipped["test"][game]["expert"]["epochs"] == 1
        assert shipped["fidelity"][game]["states"] == 100 and shipped["fidelity"][game]["agreement"] >= 0.9
        check = shipped["check"][game]
        assert check["states"] == 100 and check["threshold"] == pytest.approx(max(0.0, check["agreement"] - 0.05))
    experts = [load_expert(SHIPPED_EXPERTS / g / EXPERT_FILE, game=g) for g in meta["games"]]
    again = amn_agreement(network, action_masks(meta["actions"]), meta["games"], [n for n, _ in experts],
                          [m["actions"] for _, m in experts], 400, 0, {"frame_skip": 4})
    assert {g: r["agreement"] for g, r in again.items()} == {g: shipped["check"][g]["agreement"] for g in again}
    markdown, _ = write_report(load_runs([folder]), tmp_path / "report")   # report reads it as the run
    assert "| breakout |" in markdown and "| pong |" in markdown


def test_ship_amn_refuses_what_it_cannot_ship(tiny_amn, tiny_run, tmp_path, capsys):
    with pytest.raises(ValueError, match="dtype must be one of"):
        ship_amn(tiny_amn, tmp_path / "a", dtype="int8")
    with pytest.raises(ValueError, match="check_frames must be an int >= 1, got 0"):
        ship_amn(tiny_amn, tmp_path / "a", check_frames=0)
    with pytest.raises(ValueError, match="kind"):
        ship_amn(tiny_run, tmp_path / "a")                 # an expert's run is not an AMN's
    with pytest.raises(ValueError, match="is not a shipped AMN"):
        read_shipped_amn(tiny_amn)
    with pytest.raises(SystemExit) as exit_:
        main(["ship-amn", str(tiny_amn), "--out", str(tmp_path / "x"), "--check-frames", "0"])
    assert exit_.value.code == 2 and "--check-frames must be >= 1, got '0'" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "x").exists()
