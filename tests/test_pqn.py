"""Expert PQN: Q(lambda) returns and the rollout against hand-computed values, then short real runs
(counters, resume, several games, the checkpoint as an expert, bad settings)."""

import math

import numpy as np
import pytest
import torch

from actormimic_fast.agents.dqn import DQNConfig, load_expert, train_expert
from actormimic_fast.agents.pqn import PQNConfig, annealed_lr, train_pqn_expert, train_pqn_experts
from actormimic_fast.files.checkpoint import load_checkpoint, save_checkpoint
from actormimic_fast.files.run_logs import read_csv
from actormimic_fast.models.networks import NatureLayerNormDQN, build_network
from actormimic_fast.native.pool import PoolStep
from actormimic_fast.run.rollouts import RolloutBuffer, q_lambda_returns

from cli_runner import cli_summary, run_cli


def tiny_config(tmp_path, **changes) -> PQNConfig:
    """4 envs x 8-step rollouts, 2 epochs x 2 minibatches, test epochs of 400 frames."""
    values = dict(game="pong", frames_per_game=3_200, envs_per_game=4, rollout_steps=8, epochs=2, minibatches=2,
                  train_epoch_frames=1_600, test_epoch_frames=400, checkpoint_every=1_600, log_every=640,
                  out=str(tmp_path / "run"), device="cpu", progress=False, tensorboard=False, torch_threads=1)
    values.update(changes)
    return PQNConfig(**values)


# -- Q(lambda) returns --------------------------------------------------------------------------------
def test_q_lambda_returns_hand_values_with_a_life_loss_a_truncation_and_the_rollout_end():
    g, lam = 0.9, 0.5
    reward = torch.tensor([[1.0], [0.0], [2.0], [0.0], [1.0]])
    cut = torch.tensor([[False], [True], [False], [False], [False]])        # a life lost after step 1
    truncated = torch.tensor([[False], [False], [True], [False], [False]])  # the frame cap after step 2
    q_next = torch.tensor([[3.0], [5.0], [4.0], [6.0], [2.0]])
    G = q_lambda_returns(reward, cut, truncated, q_next, gamma=g, lam=lam)
    g4 = 1.0 + g * 2.0                                     # the rollout's last step: one-step bootstrap
    g3 = 0.0 + g * (lam * g4 + (1 - lam) * 6.0)
    g2 = 2.0 + g * 4.0                                     # truncated: bootstrap from s_3 alone
    g1 = 0.0                                               # the life was lost: no bootstrap
    g0 = 1.0 + g * (lam * g1 + (1 - lam) * 3.0)
    torch.testing.assert_close(G[:, 0], torch.tensor([g0, g1, g2, g3, g4]))


def test_q_lambda_zero_is_one_step_q_learning_and_one_is_the_discounted_return():
    reward = torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, 0.0]])
    no = torch.zeros(3, 2, dtype=torch.bool)
    q_next = torch.tensor([[2.0, 1.0], [3.0, 1.0], [4.0, 1.0]])
    one_step = q_lambda_returns(reward, no, no, q_next, gamma=0.5, lam=0.0)
    torch.testing.assert_close(one_step, reward + 0.5 * q_next)
    full = q_lambda_returns(reward, no, no, q_next, gamma=0.5, lam=1.0)
    torch.testing.assert_close(full[:, 0], torch.tensor([1 + 0.5 + 0.25 + 0.125 * 4, 1 + 0.5 + 0.25 * 4, 1 + 0.5 * 4]))


# -- the rollout buffer -------------------------------------------------------------------------------
def _step(n, env_id, reward=0.0, terminated=(), truncated=(), life_loss=()):
    flags = lambda where: np.isin(np.arange(n), where)
    return PoolStep(obs=np.zeros((n, 4, 84, 84), np.uint8), reward=np.full(n, reward, np.float32),
                    terminated=flags(terminated)[env_id], truncated=flags(truncated)[env_id],
                    life_loss=flags(life_loss)[env_id], episode_start=np.zeros(n, bool),
                    episode_return=np.zeros(n, np.float32), episode_length=np.zeros(n, np.int32),
                    lives=np.zeros(n, np.int32), env_id=env_id, game_id=np.zeros(n, np.int32))


def test_rollout_marks_the_ignored_step_after_an_episode_end_and_keeps_the_bootstrap_row():
    n = 2
    buffer = RolloutBuffer(n, 4, reward_clip=1.0, life_loss_terminal=True)
    buffer.add_step(_step(n, np.arange(n)), None)                       # the pool's first frames: no row
    obs = lambda v: torch.full((n, 4, 84, 84), v, dtype=torch.uint8)
    buffer.add_act(obs(0), np.array([1, 2]), torch.tensor([0.5, 0.6]))
    # recv order: env 1 first; env 0 loses its game, reward 5 is clipped to 1
    buffer.add_step(_step(n, np.array([1, 0]), reward=5.0, terminated=[0]), None)
    buffer.add_act(obs(1), np.array([3, 4]), torch.tensor([0.7, 0.8]))
    buffer.add_step(_step(n, np.arange(n), truncated=[1], life_loss=[1]), None)   # env 1: capped and a life lost
    buffer.add_act(obs(2), np.array([5, 0]), torch.tensor([0.9, 1.0]))
    assert buffer.num_transitions() == 2 * n
    rollout = buffer.take()
    assert rollout.steps == 2 and rollout.obs[1, 0, 0, 0, 0] == 1
    assert rollout.action.tolist() == [[1, 2], [3, 4]]
    assert rollout.reward.tolist() == [[1.0, 1.0], [0.0, 0.0]]
    assert rollout.cut.tolist() == [[True, False], [False, True]]
    assert rollout.truncated.tolist() == [[False, False], [False, False]]   # a cut step is no truncation
    assert rollout.valid.tolist() == [[True, True], [False, True]]           # env 0's step 1 was ignored
    torch.testing.assert_close(rollout.q_next, torch.tensor([[0.7, 0.8], [0.9, 1.0]]))
    # the last act's row is the next rollout's first
    assert buffer.acted == 1 and buffer.obs[0, 0, 0, 0, 0] == 2 and buffer.valid[0].tolist() == [True, False]
    with pytest.raises(RuntimeError, match="needs an act step after at least one complete step"):
        buffer.take()


# -- runs -------------------------------------------------------------------------------------------
def test_pqn_run_counts_rollouts_tests_and_writes_an_expert_checkpoint(tmp_path):
    cfg = tiny_config(tmp_path)
    summary = train_pqn_expert(cfg)
    # 800 agent steps = 200 loop steps of 4 envs; credit from loop step 2: one update per 8 loop steps
    assert summary["frames"] == 3_200 and summary["agent_steps"] == 800
    assert summary["updates"] == (200 - 1) // 8
    progress = read_csv(tmp_path / "run" / "progress.csv")
    assert [int(r["frames"]) for r in progress] == [640 * i for i in range(1, 6)]
    assert all(math.isfinite(float(r["loss"])) for r in progress[1:])
    assert float(progress[-1]["epsilon"]) == pytest.approx(0.01)
    tests = read_csv(tmp_path / "run" / "test.csv")
    assert [int(r["epoch"]) for r in tests] == [1, 2]
    payload = load_checkpoint(summary["checkpoint"])
    assert "target" not in payload and payload["meta"]["run"] == {"kind": "expert", "algorithm": "pqn"}
    network, meta = load_expert(summary["checkpoint"], game="pong")     # what evaluate, play, distill load
    assert isinstance(network, NatureLayerNormDQN) and meta["architecture"] == "nature_ln"
    assert meta["actions"] == [0, 1, 3, 4, 11, 12]
    assert network.features(torch.zeros(2, 4, 84, 84, dtype=torch.uint8)).shape == (2, 512)


def test_pqn_resume_continues_the_state_it_saved_and_is_deterministic(tmp_path):
    cfg = tiny_config(tmp_path, frames_per_game=1_600, test_epoch_frames=0)
    first = train_pqn_expert(cfg)
    saved = load_checkpoint(first["checkpoint"])
    copy_dir = tmp_path / "copy"
    copy_dir.mkdir()
    (copy_dir / "checkpoint.pt").write_bytes((tmp_path / "run" / "checkpoint.pt").read_bytes())
    resumed = train_pqn_expert(cfg.replace(frames_per_game=3_200), resume=True)
    again = train_pqn_expert(cfg.replace(frames_per_game=3_200, out=str(copy_dir)), resume=True)
    assert resumed["resumes"] == 1 and resumed["frames"] == 3_200
    # a resumed segment starts a new rollout (the envs restart): its first has T - 1 steps
    assert resumed["updates"] == first["updates"] + 400 // 4 // 8
    a, b = load_checkpoint(resumed["checkpoint"]), load_checkpoint(again["checkpoint"])
    for key in a["online"]:
        assert torch.equal(a["online"][key], b["online"][key]), key
    steps = lambda payload: [s["step"].item() for s in payload["optimizer"]["state"].values()]
    assert steps(a) == [s + (resumed["updates"] - first["updates"]) * 2 * 2 for s in steps(saved)]
    assert not torch.equal(a["online"]["head.weight"], saved["online"]["head.weight"])
    # the learning rate decays linearly to 0 over the run, clocked by the last acting step before each update
    # (within one rollout, 4 envs x 8 steps x 4 frames, of the end)
    lr_at_end = lambda payload: {g["lr"] for g in payload["optimizer"]["param_groups"]}
    (lr,) = lr_at_end(a)
    assert annealed_lr(2.5e-4, 3_200, 3_200) <= lr <= annealed_lr(2.5e-4, 3_200 - 128, 3_200)
    # a resume with a new learning rate learns at it: the optimiser's state is restored, its settings are the run's
    lowered = train_pqn_expert(cfg.replace(frames_per_game=4_800, lr=1e-4), resume=True)
    (lr,) = lr_at_end(load_checkpoint(lowered["checkpoint"]))
    assert annealed_lr(1e-4, 4_800, 4_800) <= lr <= annealed_lr(1e-4, 4_800 - 128, 4_800)
    constant = train_pqn_expert(cfg.replace(frames_per_game=6_400, lr=1e-4, anneal_lr=False), resume=True)
    assert lr_at_end(load_checkpoint(constant["checkpoint"])) == {1e-4}
    with pytest.raises(ValueError, match=r"was made for run=\{'kind': 'expert', 'algorithm': 'pqn'\}"):
        train_expert(DQNConfig(game="pong", out=cfg.out, device="cpu", architecture="nature_ln", progress=False),
                     resume=True)


def test_pqn_experts_trained_together_each_write_their_own_expert(tmp_path):
    cfg = tiny_config(tmp_path, frames_per_game=1_280, test_epoch_frames=320, train_epoch_frames=1_280,
                      out=str(tmp_path / "runs"))
    summaries = train_pqn_experts(cfg, ["pong", "breakout"])
    for game, actions in (("pong", 6), ("breakout", 4)):
        assert summaries[game]["frames"] == 1_280 and summaries[game]["updates"] == (80 - 1) // 8
        network, meta = load_expert(tmp_path / "runs" / game / "checkpoint.pt", game=game)
        assert network.head.out_features == actions
        assert [r["game"] for r in read_csv(tmp_path / "runs" / game / "test.csv")] == [game]


# -- bad settings -----------------------------------------------------------------------------------
@pytest.mark.parametrize("changes, message", [
    (dict(minibatches=33), r"minibatches must be a divisor of rollout_steps x envs_per_game \(32\)"),
    (dict(minibatches=5), r"minibatches must be a divisor of rollout_steps x envs_per_game \(32\)"),
    (dict(lockstep=False), "lockstep must be true or auto"),
    (dict(save_replay=True), "save_replay must be false: PQN has no replay memory"),
    (dict(q_lambda=1.5), "q_lambda"),
    (dict(rollout_steps=0), "rollout_steps"),
])
def test_pqn_bad_settings_name_the_setting(tmp_path, changes, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(tmp_path, **changes)


def test_train_expert_command_refuses_the_other_algorithms_settings(tmp_path):
    result = run_cli("train-expert", "--algorithm", "pqn", "--target-update", "5", "--out", tmp_path, check=False)
    assert result.returncode == 2 and "--target-update: not a setting of --algorithm pqn" in result.stderr
    result = run_cli("train-expert", "--rollout-steps", "5", "--out", tmp_path, check=False)
    assert result.returncode == 2 and "--rollout-steps: not a setting of --algorithm dqn" in result.stderr
    result = run_cli("train-expert", "--algorithm", "pqn", "--minibatches", "0", "--out", tmp_path, check=False)
    assert result.returncode == 2 and "minibatches" in result.stderr


def test_train_expert_resume_takes_the_checkpoints_algorithm(tmp_path):
    cfg = tiny_config(tmp_path, frames_per_game=640, test_epoch_frames=0)
    train_pqn_expert(cfg)
    summary = cli_summary("train-expert", "--resume", "--out", cfg.out, "--frames", "1280", "--no-progress")
    assert summary["frames"] == 1_280 and summary["resumes"] == 1 and "shuffle_rng" in load_checkpoint(
        summary["checkpoint"])


def test_each_expert_trained_together_is_the_expert_trained_alone(tmp_path):
    cfg = tiny_config(tmp_path, frames_per_game=640, test_epoch_frames=0, out=str(tmp_path / "together"))
    train_pqn_experts(cfg, ["pong", "breakout"])
    alone = train_pqn_expert(cfg.replace(out=str(tmp_path / "alone")))
    together = load_checkpoint(tmp_path / "together" / "pong" / "checkpoint.pt")
    for key, value in load_checkpoint(alone["checkpoint"])["online"].items():
        torch.testing.assert_close(together["online"][key], value, rtol=0, atol=0, msg=key)


@pytest.mark.parametrize("stacked", [False, True])
def test_experts_trained_together_clip_their_own_gradients(stacked):
    from actormimic_fast.agents.pqn import clip_each_network
    from actormimic_fast.models.networks import SeparateNetworks, StackedNetworks

    torch.manual_seed(0)
    networks = [build_network("nature_ln", 6), build_network("nature_ln", 6)]
    together = (StackedNetworks if stacked else SeparateNetworks)(networks)
    obs = torch.randint(0, 256, (2, 3, 4, 84, 84), dtype=torch.uint8)
    (together(obs)[0].sum() * 100 + together(obs)[1].sum() * 0.001).backward()   # one big gradient, one small
    clip_each_network(together, 2, max_norm=1.0)
    grads = [p.grad for p in together.parameters()]
    if stacked:
        norms = torch.stack([g.flatten(1).square().sum(1) for g in grads]).sum(0).sqrt()
    else:
        half = len(grads) // 2
        norms = torch.stack([torch.cat([g.flatten() for g in part]).norm() for part in (grads[:half], grads[half:])])
    assert norms[0] == pytest.approx(1.0, rel=1e-4) and norms[1] < 0.5      # the small one is left alone


def test_pqn_experts_distil_with_policy_and_feature_regression(tmp_path):
    from actormimic_fast.agents.distill import DistillConfig, distill

    cfg = tiny_config(tmp_path, frames_per_game=320, test_epoch_frames=0, out=str(tmp_path / "experts"))
    train_pqn_experts(cfg, ["pong", "breakout"])
    experts = ",".join(str(tmp_path / "experts" / g / "checkpoint.pt") for g in ("pong", "breakout"))
    summary = distill(DistillConfig(experts=experts, frames_per_game=800, replay_capacity=2_000, learning_starts=60,
                                    per_game=4, train_epoch_frames=800, test_epoch_frames=200, beta=0.01,
                                    out=str(tmp_path / "amn"), device="cpu", progress=False, tensorboard=False,
                                    torch_threads=1, env_threads=1))
    assert summary["updates"] > 0 and math.isfinite(summary["last_test"]["amn"]["pong"]["agreement"])
    assert summary["feature_heads"] is not None


def test_a_run_started_from_an_experts_weights_starts_at_them_in_any_precision(tmp_path):
    source = train_pqn_expert(tiny_config(tmp_path, frames_per_game=640, test_epoch_frames=0,
                                          out=str(tmp_path / "source")))
    payload = load_checkpoint(source["checkpoint"])
    half = {key: value.half() for key, value in payload["online"].items()}      # 16 bits, as ship-expert writes
    save_checkpoint(tmp_path / "shipped" / "expert.pt", {"online": half}, payload["meta"])
    # 64 frames are less than one rollout (4 envs x 8 steps x 4 frames): no update, the checkpoint is the start
    short = dict(frames_per_game=64, test_epoch_frames=0, checkpoint_every=64)
    started = train_pqn_expert(tiny_config(tmp_path, **short, init=str(tmp_path / "shipped"), out=str(tmp_path / "a")))
    online = load_checkpoint(started["checkpoint"])["online"]
    assert started["updates"] == 0 and all(torch.equal(online[key], value.float()) for key, value in half.items())
    at_random = train_pqn_expert(tiny_config(tmp_path, **short, out=str(tmp_path / "b")))
    assert not torch.equal(load_checkpoint(at_random["checkpoint"])["online"]["head.weight"], online["head.weight"])
    # the DQN trainer takes the same setting (a checkpoint.pt of any expert run of the game and architecture)
    dqn = train_expert(DQNConfig(game="pong", architecture="nature_ln", frames_per_game=64, test_epoch_frames=0,
                                 checkpoint_every=64, init=source["checkpoint"], out=str(tmp_path / "c"),
                                 device="cpu", progress=False, tensorboard=False, torch_threads=1))
    assert torch.equal(load_checkpoint(dqn["checkpoint"])["online"]["head.weight"], payload["online"]["head.weight"])
    with pytest.raises(ValueError, match=r"init must be an expert checkpoint .*'nowhere' \(no such file\)"):
        train_pqn_expert(tiny_config(tmp_path, **short, init="nowhere", out=str(tmp_path / "d")))
    with pytest.raises(ValueError, match=r"init='.*shipped': .*made for game='pong', not game='breakout'"):
        train_pqn_expert(tiny_config(tmp_path, **short, game="breakout", init=str(tmp_path / "shipped"),
                                     out=str(tmp_path / "e")))
    with pytest.raises(ValueError, match="init must be empty when experts train together"):
        train_pqn_experts(tiny_config(tmp_path, **short, init=str(tmp_path / "shipped")), ["pong", "breakout"])


def test_the_annealed_learning_rate_is_linear_to_zero_and_stays_there():
    assert annealed_lr(2.5e-4, 0, 1_000) == 2.5e-4
    assert annealed_lr(2.5e-4, 250, 1_000) == pytest.approx(1.875e-4, rel=1e-12)
    assert annealed_lr(2.5e-4, 1_000, 1_000) == 0.0 and annealed_lr(2.5e-4, 1_200, 1_000) == 0.0
