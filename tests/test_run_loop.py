"""The shared run loop: single-env runs give the weights the trainers gave before it existed, and lockstep
runs are reproducible bit for bit with several envs and env threads, for every trainer."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from actormimic_fast.agents.distill import DistillConfig, distill
from actormimic_fast.agents.dqn import DQNConfig, train_expert
from actormimic_fast.agents.multitask_dqn import MultitaskDQNConfig, train_multitask_dqn
from actormimic_fast.files.checkpoint import load_checkpoint, save_checkpoint
from actormimic_fast.files.run_logs import read_csv
from actormimic_fast.models.networks import build_network

FINGERPRINTS = json.loads((Path(__file__).parent / "data" / "single_env_fingerprints.json").read_text())
QUIET = dict(device="cpu", progress=False, tensorboard=False, torch_threads=1)
TIMING_COLUMNS = ("wall_s", "fps")     # the only values that may differ between two identical runs


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def expert_config(out, **changes) -> DQNConfig:
    return DQNConfig(**{**dict(game="pong", frames_per_game=3_000, replay_capacity=2_000, learning_starts=250,
                               target_update=20, test_epoch_frames=0, checkpoint_every=10**9, log_every=1_000,
                               epsilon_decay_frames=2_000, out=str(out), env_threads=1, **QUIET), **changes})


def multitask_config(out, variant, **changes) -> MultitaskDQNConfig:
    return MultitaskDQNConfig(**{**dict(variant=variant, games="pong", frames_per_game=2_000, replay_capacity=2_000,
                                        learning_starts=100, target_update=20, test_epoch_frames=0,
                                        checkpoint_every=10**9, log_every=1_000, epsilon_decay_frames=1_000,
                                        out=str(out), env_threads=1, **QUIET), **changes})


def save_sharp_experts(folder: Path) -> str:
    """Two untrained experts (pong, breakout) whose heads are scaled x20: sharp, seed-fixed policies."""
    paths = []
    for seed, (game, actions) in enumerate((("pong", [0, 1, 3, 4, 11, 12]), ("breakout", [0, 1, 3, 4]))):
        torch.manual_seed(seed)
        network = build_network("nature", len(actions))
        with torch.no_grad():
            network.head.weight.mul_(20.0)
            network.head.bias.mul_(20.0)
        path = folder / f"{game}.pt"
        save_checkpoint(path, {"online": network.state_dict()}, {"kind": "expert", "game": game, "actions": actions,
                                                                 "architecture": "nature", "num_actions": len(actions)})
        paths.append(str(path))
    return ",".join(paths)


def distill_config(out, experts, **changes) -> DistillConfig:
    return DistillConfig(**{**dict(experts=experts, frames_per_game=800, replay_capacity=2_000, learning_starts=60,
                                   per_game=4, beta=0.01, test_epoch_frames=0, checkpoint_every=10**9, log_every=400,
                                   out=str(out), env_threads=1, **QUIET), **changes})


# -- the refactor changed nothing: single-env runs against weights recorded before it ------------------
def assert_matches_fingerprint(state: dict, expected: dict) -> None:
    """Bit-identical (sha256 of every tensor), or, where CPU kernels differ between machines, every tensor's
    absolute sum and 8 sampled values within rtol 1e-4 and its sum within 1e-4 of its absolute sum (after ~100
    updates rounding differences stay around 1e-6 relative; a behaviour change moves them by orders of
    magnitude more)."""
    assert set(state) == set(expected)
    for name, tensor in state.items():
        want = expected[name]
        if hashlib.sha256(tensor.detach().contiguous().numpy().tobytes()).hexdigest() == want["sha256"]:
            continue
        flat = tensor.detach().double().flatten()
        index = np.linspace(0, flat.numel() - 1, 8).astype(int)
        got = [float(flat.abs().sum()), *flat[index].tolist()]
        np.testing.assert_allclose(got, [want["abs_sum"], *want["values"]], rtol=1e-4, atol=1e-6, err_msg=name)
        # the signed sum cancels (trunk.7.weight: -0.15 of an absolute sum of 1.4e4): elements within rtol bound
        # it by |sum(x) - sum(y)| <= sum(|x - y|) <= rtol * sum(|y|), not by rtol * |sum(y)|
        np.testing.assert_allclose(float(flat.sum()), want["sum"], rtol=0, atol=1e-4 * want["abs_sum"],
                                   err_msg=f"{name} sum")


def counters_without_time(payload: dict) -> dict:
    return {k: v for k, v in payload["counters"].items() if k != "wall_s"}


def test_single_env_expert_and_multitask_runs_give_the_weights_recorded_before_the_run_loop(tmp_path):
    runs = {"expert": train_expert(expert_config(tmp_path / "expert")),
            "mdqn": train_multitask_dqn(multitask_config(tmp_path / "mdqn", "mdqn")),
            "mcdqn": train_multitask_dqn(multitask_config(tmp_path / "mcdqn", "mcdqn"))}
    for name, summary in runs.items():
        payload = load_checkpoint(summary["checkpoint"])
        assert counters_without_time(payload) == FINGERPRINTS[name]["counters"], name
        assert_matches_fingerprint(payload["online"], FINGERPRINTS[name]["online"])
        assert_matches_fingerprint(payload["target"], FINGERPRINTS[name]["target"])


def test_distillation_gives_the_weights_recorded_before_the_run_loop(tmp_path):
    summary = distill(distill_config(tmp_path / "amn", save_sharp_experts(tmp_path)))
    payload = load_checkpoint(summary["checkpoint"])
    # agent_steps is the one counter the shared loop added (all envs' agent steps of this process)
    assert counters_without_time(payload) == {**FINGERPRINTS["amn"]["counters"], "agent_steps": 400}
    assert_matches_fingerprint(payload["online"], FINGERPRINTS["amn"]["online"])
    for game, heads in FINGERPRINTS["amn"]["feature_heads"].items():
        assert_matches_fingerprint(payload["feature_heads"][game], heads)


# -- lockstep mode: the same seed gives the same run with several envs and env threads ------------------
def assert_same_runs(first: Path, second: Path) -> None:
    a, b = load_checkpoint(first / "checkpoint.pt"), load_checkpoint(second / "checkpoint.pt")
    assert counters_without_time(a) == counters_without_time(b)
    for key in ("online", "target", "feature_heads"):
        if key in a:
            flat_a, flat_b = _flatten(a[key]), _flatten(b[key])
            assert flat_a.keys() == flat_b.keys()
            for name in flat_a:
                assert torch.equal(flat_a[name], flat_b[name]), f"{key}.{name}"
    for name, state in _flatten(a["optimizer"]["state"]).items():
        assert torch.equal(state, _flatten(b["optimizer"]["state"])[name]), name
    assert a["rng"]["numpy"] == b["rng"]["numpy"] and torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    for table in ("progress", "episodes", "test"):
        rows_a, rows_b = read_csv(first / f"{table}.csv"), read_csv(second / f"{table}.csv")
        assert len(rows_a) == len(rows_b), table
        for row_a, row_b in zip(rows_a, rows_b):
            for column in row_a:
                if column not in TIMING_COLUMNS:
                    assert row_a[column] == row_b[column], (table, column)


def _flatten(tree, prefix="") -> dict:
    if isinstance(tree, torch.Tensor):
        return {prefix: tree}
    out = {}
    for key, value in tree.items():
        if isinstance(value, (dict, torch.Tensor)):
            out.update(_flatten(value, f"{prefix}{key}."))
    return out


def test_lockstep_expert_runs_with_several_envs_are_reproducible(tmp_path):
    cfg = dict(envs_per_game=3, frames_per_game=2_400, learning_starts=150, test_epoch_frames=200, train_epoch_frames=1_200,
               lockstep=True)
    train_expert(expert_config(tmp_path / "a", env_threads=2, **cfg))
    train_expert(expert_config(tmp_path / "b", env_threads=1, **cfg))
    assert_same_runs(tmp_path / "a", tmp_path / "b")
    assert len(read_csv(tmp_path / "a" / "test.csv")) == 2


def test_lockstep_multitask_runs_with_several_envs_are_reproducible(tmp_path):
    cfg = dict(games="pong,breakout", envs_per_game=2, frames_per_game=1_200, learning_starts=60,
               test_epoch_frames=200, train_epoch_frames=600, lockstep=True)
    train_multitask_dqn(multitask_config(tmp_path / "a", "mcdqn", env_threads=2, **cfg))
    train_multitask_dqn(multitask_config(tmp_path / "b", "mcdqn", env_threads=1, **cfg))
    assert_same_runs(tmp_path / "a", tmp_path / "b")


def test_lockstep_distillation_with_several_envs_is_reproducible(tmp_path):
    experts = save_sharp_experts(tmp_path)
    cfg = dict(envs_per_game=2, frames_per_game=800, test_epoch_frames=200, train_epoch_frames=400,
               lockstep=True)
    distill(distill_config(tmp_path / "a", experts, env_threads=2, **cfg))
    distill(distill_config(tmp_path / "b", experts, env_threads=1, **cfg))
    assert_same_runs(tmp_path / "a", tmp_path / "b")
    assert {r["policy"] for r in read_csv(tmp_path / "a" / "test.csv")} == {"amn", "expert"}


# -- the same command-line options and defaults as before the run loop, plus the new modes ---------------
# issue 24: amp's default is auto (None: on where the CPU computes bfloat16 natively; it was False)
NEW_SETTINGS = {"lockstep": None, "cuda_graphs": True, "amp": None}
# issue 23: distill shares the optimiser settings group, whose RMSProp settings are new to it;
# issue 24: the expert trainers (and transfer, an expert DQN) have --compile; issue 25: train-expert has --init
# (start at an expert's weights; transfer's own --init, an AMN, was there before)
NEW_FOR_COMMAND = {"distill": {"rmsprop_momentum": 0.95, "rmsprop_eps": 0.01},
                   "train-expert": {"compile": False, "init": ""}, "transfer": {"compile": False}}


@pytest.mark.parametrize("command", ["train-expert", "transfer", "train-multitask-dqn", "distill"])
def test_every_setting_and_default_of_before_is_still_there(command):
    from actormimic_fast.agents.transfer import TransferConfig
    from actormimic_fast.cli import build_parser

    before = json.loads((Path(__file__).parent / "data" / "settings_before_run_loop.json").read_text())[command]
    cls = {"train-expert": DQNConfig, "transfer": TransferConfig, "train-multitask-dqn": MultitaskDQNConfig,
           "distill": DistillConfig}[command]
    now = {name: info["default"] for name, info in cls.field_help().items()}
    renamed = {cls.RENAMED.get(name, name): value for name, value in before.items()}   # issue 23's renames
    assert now == {**renamed, **NEW_SETTINGS, **NEW_FOR_COMMAND.get(command, {})}
    required = {"init": "random"} if command == "transfer" else {}
    assert cls.from_dict({**before, **required}) == cls.from_dict({**renamed, **required})   # old spellings load
    parser = build_parser()
    actions = parser._subparsers._group_actions[0].choices[command]._actions
    assert set(now) <= {a.dest for a in actions}
    flags = {flag for a in actions for flag in a.option_strings}
    assert {"--" + name.replace("_", "-") for name in before} <= flags   # old spellings on the command line too


def test_a_distill_checkpoint_from_before_the_run_loop_resumes(tmp_path):
    """Checkpoints before the shared loop counted distill's progress in lockstep steps, without agent_steps."""
    experts = save_sharp_experts(tmp_path)
    cfg = distill_config(tmp_path / "amn", experts, frames_per_game=400, test_epoch_frames=0)
    distill(cfg)
    payload = load_checkpoint(tmp_path / "amn" / "checkpoint.pt")
    assert payload["counters"].pop("agent_steps") == 200            # 100 steps x 2 envs
    meta = payload.pop("meta")
    payload.pop("format")
    save_checkpoint(tmp_path / "amn" / "checkpoint.pt", payload, meta)
    resumed = distill(cfg.replace(frames_per_game=800), resume=True)
    assert resumed["steps"] == 200 and resumed["frames"] == 800 and resumed["agent_steps"] == 400
