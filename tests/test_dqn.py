"""Expert DQN: each piece of the algorithm against hand-computed values, then short real runs."""

import math

import numpy as np
import pytest
import torch

from actormimic_fast import ReplayMemory
from actormimic_fast.agents.dqn import (load_expert, sync_target, td_loss, td_target,
                                        train_expert)
from actormimic_fast.files.checkpoint import load_checkpoint
from actormimic_fast.agents.dqn import DQNConfig
from actormimic_fast.run.evaluation import evaluate
from actormimic_fast.files.run_logs import read_csv
from actormimic_fast.models.networks import build_network


def tiny_config(tmp_path, **changes) -> DQNConfig:
    """A run of a few thousand frames: replay 5k, learning after 500 steps, test epochs of 400 frames."""
    values = dict(game="pong", frames_per_game=6_000, replay_capacity=5_000, learning_starts=500, target_update=50,
                  train_epoch_frames=3_000, test_epoch_frames=400, checkpoint_every=3_000, log_every=1_000,
                  epsilon_decay_frames=4_000, out=str(tmp_path / "run"), device="cpu", progress=False,
                  tensorboard=False, torch_threads=1)
    values.update(changes)
    return DQNConfig(**values)


# -- pieces ------------------------------------------------------------------------------------------
def test_td_target_dqn_and_double_dqn_hand_values():
    r_t = torch.tensor([1.0, -1.0, 0.5])
    discount_t = torch.tensor([0.99, 0.0, 0.99 ** 3])      # one step, termination, 3-step return
    q_t_target = torch.tensor([[1.0, 3.0], [2.0, 0.0], [-1.0, -2.0]])
    y = td_target(r_t, discount_t, q_t_target)
    torch.testing.assert_close(y, torch.tensor([1 + 0.99 * 3, -1.0, 0.5 + 0.970299 * -1]))
    q_t_online = torch.tensor([[5.0, 0.0], [0.0, 1.0], [0.0, 3.0]])  # argmax 0, 1, 1
    y_double = td_target(r_t, discount_t, q_t_target, q_t_online)
    torch.testing.assert_close(y_double, torch.tensor([1 + 0.99 * 1, -1.0, 0.5 + 0.970299 * -2]))


def test_huber_loss_and_its_clipped_gradient():
    q = torch.zeros(3, requires_grad=True)
    y = torch.tensor([0.5, 2.0, -3.0])
    loss = td_loss(q, y, "huber", "sum")       # 0.5 * 0.5^2, 2 - 0.5, 3 - 0.5
    assert loss.item() == pytest.approx(0.125 + 1.5 + 2.5)
    loss.backward()
    torch.testing.assert_close(q.grad, torch.tensor([-0.5, -1.0, 1.0]))  # TD error clipped to [-1, 1]
    assert td_loss(torch.zeros(3), y, "huber", "mean").item() == pytest.approx(4.125 / 3)
    assert td_loss(torch.zeros(3), y, "mse", "sum").item() == pytest.approx(0.5 * (0.25 + 4 + 9))
    with pytest.raises(ValueError, match="loss must be 'huber' or 'mse', got 'l1'"):
        td_loss(q, y, "l1")


def test_target_sync_copies_every_parameter():
    torch.manual_seed(0)
    online, target = build_network("nature", 6), build_network("nature", 6)
    assert not torch.equal(online.head.weight, target.head.weight)
    sync_target(online, target)
    for a, b in zip(online.state_dict().values(), target.state_dict().values()):
        assert torch.equal(a, b)
    with torch.no_grad():
        online.head.bias.add_(1.0)
    assert not torch.equal(online.head.bias, target.head.bias)  # a copy, not shared storage


def test_reward_clipping_hand_values():
    replay = ReplayMemory(100, np.zeros(1, np.int64), n_step=1, gamma=0.99)
    frames = np.zeros((1, 84, 84), np.uint8)
    for t, (r, start) in enumerate([(0.0, True), (5.0, False), (-3.0, False), (0.5, False), (0.0, False)]):
        replay.add([0], frames, [1], [r], [False], [False], [False], [start])
    env, idx = np.zeros(3, np.int64), np.arange(3)
    torch.testing.assert_close(replay.gather(env, idx).reward, torch.tensor([5.0, -3.0, 0.5]))
    torch.testing.assert_close(replay.gather(env, idx, reward_clip=1.0).reward, torch.tensor([1.0, -1.0, 0.5]))
    replay3 = ReplayMemory(100, np.zeros(1, np.int64), n_step=3, gamma=0.99)
    for t, (r, start) in enumerate([(0.0, True), (5.0, False), (-3.0, False), (0.5, False), (0.0, False)]):
        replay3.add([0], frames, [1], [r], [False], [False], [False], [start])
    clipped = replay3.gather([0], [0], reward_clip=1.0).reward.item()
    assert clipped == pytest.approx(1.0 - 0.99 + 0.99 ** 2 * 0.5)


def test_config_parses_sizes_and_rejects_bad_values(tmp_path):
    cfg = DQNConfig.from_dict({"frames": "10M", "learning_starts": "50k", "double_dqn": "true"})
    assert (cfg.frames_per_game, cfg.learning_starts, cfg.double_dqn) == (10_000_000, 50_000, True)
    with pytest.raises(ValueError, match="frames must be a count like 10M or 250k, got 'lots'"):
        DQNConfig.from_dict({"frames": "lots"})
    with pytest.raises(ValueError, match="lr must be > 0, got -1.0"):
        DQNConfig.from_dict({"lr": "-1"})
    with pytest.raises(ValueError, match="optimizer must be one of"):
        DQNConfig(optimizer="sgd")
    with pytest.raises(ValueError, match="unknown setting 'learning_rate'"):
        DQNConfig.from_dict({"learning_rate": 1})
    path = tmp_path / "c.toml"
    path.write_text('[expert]\ngame = "boxing"\nframes = "250k"\nn_step = 3\n')
    cfg = DQNConfig.from_toml(path, {"n_step": "5"})
    assert (cfg.game, cfg.frames_per_game, cfg.n_step) == ("boxing", 250_000, 5)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        DQNConfig.from_toml(tmp_path / "missing.toml")
    path.write_text("frames = [")
    with pytest.raises(ValueError, match="is not valid TOML"):
        DQNConfig.from_toml(path)


# -- evaluation protocol -----------------------------------------------------------------------------
def random_legal_act(masks):
    rng = np.random.default_rng(0)

    def act(obs, game_ids):
        return np.array([rng.choice(np.flatnonzero(masks[g])) for g in game_ids.numpy()])

    return act


def test_evaluation_counts_only_completed_full_games():
    from actormimic_fast import MultiGameEnvPool

    with MultiGameEnvPool(["breakout", "pong"], envs_per_game=1, seed=3) as pool:
        result = evaluate(random_legal_act(pool.action_masks), pool=pool, frames_per_game=2_000, epsilon=0.05)
    breakout, pong = result["breakout"], result["pong"]
    # Random Breakout loses its 5 lives in well under 2,000 frames; a game, not a life, is one episode.
    assert breakout.episodes >= 1 and breakout.frames == 2_000
    assert breakout.mean == pytest.approx(np.mean(breakout.returns)) and breakout.max == max(breakout.returns)
    # Random Pong needs far more than 2,000 frames to lose 21 points: nothing completes, nothing invented.
    assert pong.episodes == 0 and math.isnan(pong.mean) and math.isnan(pong.max)
    assert -21 <= pong.partial_return <= 0


def test_evaluation_argument_errors():
    act = random_legal_act(np.ones((1, 18), bool))
    with pytest.raises(ValueError, match="exactly one of frames_per_game and episodes_per_game"):
        evaluate(act, ["pong"])
    with pytest.raises(ValueError, match="epsilon must be in"):
        evaluate(act, ["pong"], frames_per_game=100, epsilon=2.0)
    with pytest.raises(ValueError, match="unknown game 'pongg'"):
        evaluate(act, ["pongg"], frames_per_game=100)


# -- short real runs ---------------------------------------------------------------------------------
def test_training_run_checkpoint_round_trip_and_wrong_game(tmp_path):
    cfg = tiny_config(tmp_path, target_update=25)
    summary = train_expert(cfg)
    assert summary["frames"] == 6_000 and summary["agent_steps"] == 1_500
    assert summary["updates"] == (1_500 - 500 + 1) // 4 and summary["epochs"] == 2
    payload = load_checkpoint(summary["checkpoint"], expect={"game": "pong", "kind": "expert"})
    assert payload["meta"]["actions"] == [0, 1, 3, 4, 11, 12] and payload["meta"]["architecture"] == "nature"
    assert payload["counters"]["frames"] == 6_000 and payload["config"]["replay_capacity"] == 5_000
    network, meta = load_expert(summary["checkpoint"], game="pong")
    for name, tensor in network.state_dict().items():
        assert torch.equal(tensor, payload["online"][name])
    # target = online at the last multiple of target_update; online moved on afterwards
    synced = payload["counters"]["updates"] % 25 == 0
    same = all(torch.equal(payload["target"][k], payload["online"][k]) for k in payload["online"])
    assert same == synced
    tests = read_csv(tmp_path / "run" / "test.csv")
    assert [int(r["epoch"]) for r in tests] == [1, 2] and all(int(r["test_frames"]) == 400 for r in tests)
    progress = read_csv(tmp_path / "run" / "progress.csv")
    assert [int(r["frames"]) for r in progress] == [1_000 * i for i in range(1, 7)]
    assert math.isfinite(float(progress[-1]["loss"])) and float(progress[-1]["fps"]) > 0
    with pytest.raises(ValueError, match="was made for game='pong', not game='breakout'"):
        load_expert(summary["checkpoint"], game="breakout")
    with pytest.raises(ValueError, match="was made for architecture='nature', not architecture='large'"):
        train_expert(cfg.replace(architecture="large"), resume=True)
    with pytest.raises(ValueError, match="was made for game='pong', not game='boxing'"):
        train_expert(cfg.replace(game="boxing"), resume=True)


def test_double_dqn_adam_nstep_and_several_envs_keep_the_update_ratio(tmp_path):
    cfg = tiny_config(tmp_path, frames_per_game=4_000, envs_per_game=4, double_dqn=True, optimizer="adam", n_step=3,
                      test_epoch_frames=0, save_replay=True)
    summary = train_expert(cfg)
    assert summary["agent_steps"] == 1_000 and summary["frames"] == 4_000
    # 4 envs per iteration: updates start when 500 steps are taken, one per 4 steps after that
    assert summary["updates"] == (1_000 - 500 + 4) // 4
    payload = load_checkpoint(summary["checkpoint"])
    assert payload["replay"]["frames"].shape[0] > 0
    resumed = train_expert(cfg.replace(frames_per_game=4_800), resume=True)   # restores the replay: no refill
    assert resumed["frames"] == 4_800 and resumed["resumes"] == 1
    assert resumed["updates"] == summary["updates"] + 200 // 4
