"""Actor-Mimic distillation: the pieces against plain references, then short real runs (CPU)."""

import json
import math
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from actormimic_fast import MultiGameEnvPool
from actormimic_fast.agents.distill import ExpertEnsemble, Student, actor_mimic_loss, distill, load_experts
from actormimic_fast.agents.distill import DistillConfig
from actormimic_fast.agents.dqn import load_expert
from actormimic_fast.files.checkpoint import load_checkpoint, save_checkpoint
from actormimic_fast.files.run_info import read_run_info
from actormimic_fast.files.run_logs import read_csv
from actormimic_fast.models.networks import build_network
from actormimic_fast.run.acting import masked_argmax, random_legal_actions
from actormimic_fast.reference.distill_reference import reference_actor_mimic_loss
from cli_runner import run_cli as cli

LEGAL = {"pong": [0, 1, 3, 4, 11, 12], "breakout": [0, 1, 3, 4], "boxing": list(range(18))}

torch.set_num_threads(1)


def save_random_expert(path, game, seed, head_scale=1.0, actions=None, architecture="nature"):
    """An untrained expert checkpoint. Its head is scaled so that its softmax policy is sharp (a random
    network's Q-values are nearly tied, which would make the teacher's preferences meaningless)."""
    actions = LEGAL[game] if actions is None else actions
    torch.manual_seed(seed)
    network = build_network(architecture, len(actions))
    with torch.no_grad():
        network.head.weight.mul_(head_scale)
        network.head.bias.mul_(head_scale)
    meta = {"kind": "expert", "game": game, "actions": list(actions), "architecture": architecture,
            "num_actions": len(actions)}
    save_checkpoint(path, {"online": network.state_dict()}, meta)
    return str(path)


def experts_for(tmp_path, games, head_scale=1.0):
    return ",".join(save_random_expert(tmp_path / f"{g}.pt", g, seed=i, head_scale=head_scale)
                    for i, g in enumerate(games))


def tiny_config(tmp_path, experts, **changes) -> DistillConfig:
    """A run of 800 frames per game (200 steps): updates from step 60, a test epoch of 200 frames per game."""
    values = dict(experts=experts, frames_per_game=800, replay_capacity=2_000, learning_starts=60,
                  per_game=4, train_epoch_frames=600, test_epoch_frames=200, checkpoint_every=400,
                  log_every=400, out=str(tmp_path / "amn"), device="cpu", progress=False, tensorboard=False,
                  torch_threads=1, env_threads=1)
    values.update(changes)
    return DistillConfig(**values)


# -- pieces ------------------------------------------------------------------------------------------
def test_expert_ensemble_is_each_expert_run_separately(tmp_path):
    games = ["pong", "breakout", "boxing"]
    experts = [load_expert(save_random_expert(tmp_path / f"{g}.pt", g, seed=i))[0] for i, g in enumerate(games)]
    ensemble = ExpertEnsemble(experts, [LEGAL[g] for g in games])
    obs = torch.randint(0, 256, (3, 5, 4, 84, 84), dtype=torch.uint8)
    teacher_q, features = ensemble(obs)
    assert teacher_q.shape == (3, 5, 18) and features.shape == (3, 5, 512)
    for g, (game, expert) in enumerate(zip(games, experts)):
        legal = torch.tensor(LEGAL[game])
        with torch.no_grad():
            torch.testing.assert_close(teacher_q[g][:, legal], expert(obs[g]), rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(features[g], expert.features(obs[g]), rtol=1e-4, atol=1e-5)
        illegal = torch.ones(18, dtype=torch.bool)
        illegal[legal] = False
        assert (teacher_q[g][:, illegal] == 0).all()
    with pytest.raises(ValueError, match=r"obs must be \[games=3, n, stack, 84, 84\], got \(2, 5, 4, 84, 84\)"):
        ensemble(obs[:2])


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_loss_matches_the_plain_reference_with_and_without_features(reduction):
    torch.manual_seed(0)
    masks = torch.zeros(3, 18, dtype=torch.bool)
    masks[0, LEGAL["pong"]] = masks[1, LEGAL["breakout"]] = masks[2] = True
    game_id = torch.tensor([0, 0, 1, 1, 2, 2])
    logits = (3 * torch.randn(6, 18)).requires_grad_()
    teacher_q = 5 * torch.randn(6, 18)
    predicted = torch.randn(6, 32, requires_grad=True)
    expert_h = torch.randn(6, 32)
    for beta in (0.0, 0.01):
        loss, policy, feature = actor_mimic_loss(logits, teacher_q, masks, game_id, tau=0.5, reduction=reduction,
                                                 predicted_features=predicted, expert_features=expert_h, beta=beta)
        expected = reference_actor_mimic_loss(logits, teacher_q, masks[game_id], 0.5, reduction, predicted,
                                              expert_h, beta)
        torch.testing.assert_close(loss, expected)
        grads = torch.autograd.grad(loss, (logits, predicted), allow_unused=True)
        expected_grads = torch.autograd.grad(expected, (logits, predicted), allow_unused=True)
        torch.testing.assert_close(grads[0], expected_grads[0])
        if beta:
            torch.testing.assert_close(grads[1], expected_grads[1])
            per_row = (predicted - expert_h).square().sum(1)
            torch.testing.assert_close(feature, per_row.sum() if reduction == "sum" else per_row.mean())
        else:
            assert feature.item() == 0.0 and torch.equal(loss, policy)


def test_feature_regression_heads_learn_and_send_gradients_into_the_amn(tmp_path):
    games = ["pong", "breakout"]
    experts = [load_expert(save_random_expert(tmp_path / f"{g}.pt", g, seed=i))[0] for i, g in enumerate(games)]
    ensemble = ExpertEnsemble(experts, [LEGAL[g] for g in games])
    torch.manual_seed(0)
    student = Student(build_network("nature", 18), games, ensemble.feature_dim, feature_regression=True)
    obs = torch.randint(0, 256, (2, 8, 4, 84, 84), dtype=torch.uint8)
    _, expert_h = ensemble(obs)
    expert_h = expert_h.flatten(0, 1)
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-3)
    losses = []
    for step in range(30):
        _, predicted = student(obs.flatten(0, 1))
        feature_loss = (predicted - expert_h).square().sum(1).mean()
        optimizer.zero_grad()
        feature_loss.backward()
        if step == 0:
            # The feature loss alone reaches the AMN's first convolution and every game's head,
            # and leaves the policy head untouched.
            assert student.amn.trunk[0].weight.grad.abs().sum() > 0
            assert all(h.weight.grad.abs().sum() > 0 for h in student.feature_heads.values())
            assert student.amn.head.weight.grad is None
        optimizer.step()
        losses.append(feature_loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_bad_expert_lists_raise_clear_errors(tmp_path):
    pong = save_random_expert(tmp_path / "pong.pt", "pong", 0)
    boxing = save_random_expert(tmp_path / "boxing.pt", "boxing", 1)
    with pytest.raises(ValueError, match=r"games \['pong', 'breakout'\] do not match the experts' games "
                                         r"\['pong', 'boxing'\]"):
        load_experts([pong, boxing], ["pong", "breakout"])
    with pytest.raises(FileNotFoundError, match="checkpoint '.*missing.pt' does not exist"):
        load_experts([pong, str(tmp_path / "missing.pt")])
    with pytest.raises(ValueError, match=r"experts must be for different games, got \['pong'\]"):
        load_experts([pong, pong])
    with pytest.raises(ValueError, match="experts must name one expert checkpoint per game, got \\[\\]"):
        load_experts([])
    large = save_random_expert(tmp_path / "large.pt", "breakout", 2, architecture="large")
    with pytest.raises(ValueError, match="experts must share one architecture"):
        load_experts([pong, large])
    wrong = save_random_expert(tmp_path / "wrong.pt", "breakout", 3, actions=[0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"the expert for breakout plays actions \[0, 1, 2, 3\], but the "
                                         r"game's legal actions are \[0, 1, 3, 4\]"):
        distill(tiny_config(tmp_path, f"{pong},{wrong}"))
    with pytest.raises(ValueError, match="per_game must be <= replay_capacity"):
        DistillConfig(per_game=10, replay_capacity=5)


# -- short real runs ---------------------------------------------------------------------------------
def agreement(amn, ensemble, obs_by_game, masks):
    """Share of states where the AMN's masked argmax equals the expert's; obs_by_game [G, n, 4, 84, 84]."""
    with torch.no_grad():
        teacher_q, _ = ensemble(obs_by_game)
        row_masks = masks.repeat_interleave(obs_by_game.shape[1], 0)
        a_expert = masked_argmax(teacher_q.flatten(0, 1), row_masks).numpy()
        a_amn = masked_argmax(amn(obs_by_game.flatten(0, 1)), row_masks).numpy()
    return float(np.mean(a_expert == a_amn)), a_expert


def held_out_states(games, steps=150, seed=12345):
    """States the run never saw: another seed, random legal play, every 3rd step kept."""
    kept = []
    with MultiGameEnvPool(games, envs_per_game=1, seed=seed) as pool:
        rng = np.random.default_rng(seed)
        pool.reset()
        for t in range(steps):
            out = pool.step(random_legal_actions(rng, pool.env_action_masks))
            if t % 3 == 0:
                kept.append(out.obs.copy())
        masks = torch.from_numpy(pool.action_masks.copy())
    return torch.from_numpy(np.stack(kept, axis=1)), masks     # [G, n, 4, 84, 84]


def test_distillation_lifts_policy_agreement_from_chance_to_90_percent(tmp_path):
    """Untrained experts with heads scaled x30 (sharp, well-defined preferences). Their greedy action barely
    varies within a game (random conv features are dominated by each game's static screen), so this checks
    that the AMN learns every game's masked expert policy from pixels alone, not fine state distinctions."""
    games = ["pong", "breakout", "boxing"]
    experts = experts_for(tmp_path, games, head_scale=30.0)
    cfg = tiny_config(tmp_path, experts, frames_per_game=1_000, learning_starts=50, update_every=2,
                      per_game=8, lr=1e-3, loss_reduction="mean", test_epoch_frames=0, test_experts=False)
    networks = load_experts(cfg.expert_paths).networks
    ensemble = ExpertEnsemble(networks, [LEGAL[g] for g in games])
    obs, masks = held_out_states(games)
    torch.manual_seed(cfg.seed)
    before, a_expert = agreement(build_network("nature", 18), ensemble, obs, masks)
    summary = distill(cfg)
    after, _ = agreement(summary["amn"], ensemble, obs, masks)
    chance = float(np.mean([1 / len(LEGAL[g]) for g in games]))
    print(f"agreement on {obs.shape[0] * obs.shape[1]} held-out states: {before:.2f} at init -> {after:.2f} "
          f"after {summary['updates']} updates (chance {chance:.2f}; the experts' greedy action takes "
          f"{sum(len(np.unique(a)) for a in np.split(a_expert, len(games)))} values over the states)")
    assert before < 0.5 and after >= 0.9


def test_run_writes_the_checkpoint_contract_tests_both_policies_and_resumes(tmp_path):
    games = ["pong", "breakout"]
    experts = experts_for(tmp_path, games, head_scale=10.0)
    cfg = tiny_config(tmp_path, experts, beta=0.01, optimizer="authors_adam")
    summary = distill(cfg)
    assert summary["frames"] == 800 and summary["steps"] == 200 and summary["epochs"] == 1
    # one update per 4 steps from step 60 on: credit 0.25 per step from step 60 to 200
    assert summary["updates"] == (200 - 60 + 1) // 4
    assert math.isfinite(summary["policy_loss"]) and math.isfinite(summary["feature_loss"])

    payload = load_checkpoint(tmp_path / "amn" / "checkpoint.pt", expect={"kind": "amn"})
    assert payload["meta"] == {"kind": "amn", "games": games, "actions": [LEGAL[g] for g in games],
                               "architecture": "nature", "num_actions": 18, "beta": 0.01}
    amn = build_network("nature", 18)
    amn.load_state_dict(payload["online"])             # keys trunk.* and head.*, nothing else
    assert set(payload["feature_heads"]) == set(games)
    for state in payload["feature_heads"].values():
        head = torch.nn.Linear(512, 512)
        head.load_state_dict(state)
    assert payload["counters"]["updates"] == summary["updates"] and payload["config"]["beta"] == 0.01

    rows = read_csv(tmp_path / "amn" / "test.csv")
    assert sorted((r["policy"], r["game"]) for r in rows) == [("amn", "breakout"), ("amn", "pong"),
                                                               ("expert", "breakout"), ("expert", "pong")]
    for r in rows:
        assert int(r["test_frames"]) == 200 and int(r["epoch"]) == 1
        assert (0 <= float(r["agreement"]) <= 1) if r["policy"] == "amn" else r["agreement"] == ""
    info = read_run_info(tmp_path / "amn")
    assert info["kind"] == "amn" and info["games"] == games and info["beta"] == 0.01
    assert info["experts"] == dict(zip(games, cfg.expert_paths)) and info["architecture"] == "nature"

    resumed = distill(cfg.replace(frames_per_game=1_200), resume=True)
    assert resumed["frames"] == 1_200 and resumed["resumes"] == 1 and resumed["epochs"] == 2
    # no saved replay: it refills learning_starts steps' worth (60 transitions per game) before updating
    assert summary["updates"] < resumed["updates"] <= summary["updates"] + (100 - 60) // 4 + 1
    rows = read_csv(tmp_path / "amn" / "test.csv")
    assert [r["policy"] for r in rows].count("expert") == 2           # the experts were tested once
    with pytest.raises(ValueError, match="was made for beta=0.01, not beta=0.0"):
        distill(cfg.replace(beta=0.0), resume=True)


def _ddp_worker(rank, world, port, cfg_dict, result_dir):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    summary = distill(DistillConfig(**cfg_dict))
    state = {"amn": summary["amn"].state_dict(), "heads": summary["feature_heads"].state_dict(),
             "updates": summary["updates"], "frames": summary["frames"]}
    torch.save(state, Path(result_dir) / f"rank{rank}.pt")


def test_ddp_two_processes_keep_identical_parameters(tmp_path):
    experts = experts_for(tmp_path, ["pong", "breakout"], head_scale=10.0)
    cfg = tiny_config(tmp_path, experts, frames_per_game=800, test_epoch_frames=0, beta=0.01)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(_ddp_worker, args=(2, port, cfg.to_dict(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    # 2 processes: each step adds 2 x 4 frames per game, 100 steps; one update per 4 steps from step 60
    assert r0["frames"] == r1["frames"] == 800 and r0["updates"] == r1["updates"] == (100 - 60 + 1) // 4
    for key in ("amn", "heads"):
        for name, tensor in r0[key].items():
            assert torch.equal(tensor, r1[key][name]), name
    torch.manual_seed(cfg.seed)
    initial = build_network("nature", 18).state_dict()
    assert not torch.equal(initial["head.weight"], r0["amn"]["head.weight"])     # they did learn
    assert load_checkpoint(tmp_path / "amn" / "checkpoint.pt")["counters"]["frames"] == 800


def test_cli_smoke_run_and_errors(tmp_path):
    experts = experts_for(tmp_path, ["pong", "breakout"])
    out = tmp_path / "amn"
    proc = cli("distill", "--experts", experts, "--games", "breakout,pong", "--frames-per-game", "400",
               "--learning-starts", "50", "--per-game", "4", "--replay-capacity", "1k", "--test-epoch-frames", "0",
               "--actor", "expert", "--out", out, "--device", "cpu", "--torch-threads", "1", "--no-progress",
               "--no-tensorboard")
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["frames"] == 400 and summary["games"] == ["pong", "breakout"] and summary["updates"] == (100 - 50 + 1) // 4
    assert load_checkpoint(out / "checkpoint.pt", expect={"kind": "amn", "games": ["pong", "breakout"]})
    proc = cli("distill", "--experts", experts, "--games", "pong,boxing", check=False, timeout=60)
    assert proc.returncode == 2 and "do not match the experts' games" in proc.stderr, proc.stderr
    proc = cli("distill", "--experts", tmp_path / "nope.pt", check=False, timeout=60)
    assert proc.returncode == 2 and "nope.pt' does not exist" in proc.stderr, proc.stderr
    proc = cli("distill", "--beta", "-1", check=False, timeout=60)
    assert proc.returncode == 2 and "beta must be >= 0, got -1.0" in proc.stderr, proc.stderr
