"""Expert PQN against the CleanRL-style reference (reference/cleanrl_pqn.py): the Q(lambda) returns, one whole
update (E epochs x M minibatches), and a smoke run of the reference loop the benchmark times."""

import math

import numpy as np
import pytest
import torch

from actormimic_fast.agents.pqn import ExpertPQN, PQNConfig
from actormimic_fast.models.networks import build_network
from actormimic_fast.reference.cleanrl_pqn import pqn_update, q_lambda_targets, train_cleanrl_pqn
from actormimic_fast.run.rollouts import Rollout, RolloutBuffer, q_lambda_returns


def random_rollout(steps: int, envs: int, seed: int, cut_rate: float = 0.2) -> Rollout:
    """Random frames, actions, rewards in [-1, 1] and max Q-values; games ended or lives lost at cut_rate;
    every row valid and nothing truncated (CleanRL's loop has neither)."""
    g = torch.Generator().manual_seed(seed)
    return Rollout(obs=torch.randint(0, 256, (steps, envs, 4, 84, 84), dtype=torch.uint8, generator=g),
                   action=torch.randint(0, 6, (steps, envs), generator=g),
                   reward=torch.rand(steps, envs, generator=g) * 2 - 1,
                   cut=torch.rand(steps, envs, generator=g) < cut_rate,
                   truncated=torch.zeros(steps, envs, dtype=torch.bool),
                   valid=torch.ones(steps, envs, dtype=torch.bool),
                   q_next=torch.randn(steps, envs, generator=g))


def test_q_lambda_returns_equal_cleanrls_targets_with_episode_ends_and_lost_lives():
    rollout = random_rollout(32, 8, seed=0)
    reward, q_next = rollout.reward.double(), rollout.q_next.double()
    assert rollout.cut.any(0).all() and (~rollout.cut).any(0).all()      # every env has cuts and runs
    ours = q_lambda_returns(reward, rollout.cut, rollout.truncated, q_next, gamma=0.99, lam=0.65)
    # ours: cut[t] = the game ended or a life was lost after step t, q_next[t] = max Q(s_{t+1});
    # CleanRL's: the done of the next step and the value of the next obs: the same flags and values
    theirs = q_lambda_targets(reward, rollout.cut.double(), q_next, 0.99, 0.65)
    # the same computation in float64: float64's default tolerance
    torch.testing.assert_close(ours, theirs)


def test_one_update_equals_cleanrls_minibatch_loop(tmp_path, one_torch_thread):
    steps, envs, epochs, minibatches = 8, 4, 2, 2          # 32 rows, minibatches of 16
    cfg = PQNConfig(game="pong", envs_per_game=envs, rollout_steps=steps, epochs=epochs, minibatches=minibatches,
                    device="cpu", out=str(tmp_path / "run"))
    algo = ExpertPQN(cfg, ["pong"], [np.arange(6)], torch.device("cpu"),
                     RolloutBuffer(envs, steps + 1, reward_clip=1.0, life_loss_terminal=True), [tmp_path])
    assert isinstance(algo.optimizer, torch.optim.RAdam)
    assert algo.optimizer.defaults["lr"] == 2.5e-4 and algo.optimizer.defaults["eps"] == 1e-8

    def reference_from(initial: dict, seed: int):
        network = build_network("nature_ln", 6)
        network.load_state_dict(initial)
        optimizer = torch.optim.RAdam(network.parameters(), lr=2.5e-4, eps=1e-8)
        log = pqn_update(network, optimizer, rollout.obs, rollout.action, returns, epochs=epochs,
                         minibatches=minibatches, generator=torch.Generator().manual_seed(seed),
                         max_grad_norm=cfg.max_grad_norm)
        return network.state_dict(), log

    rollout = random_rollout(steps, envs, seed=1)
    returns = q_lambda_returns(rollout.reward, rollout.cut, rollout.truncated, rollout.q_next, gamma=cfg.gamma,
                               lam=cfg.q_lambda)
    initial = {key: value.clone() for key, value in algo.online.state_dict().items()}
    expected, log = reference_from(initial, cfg.seed)      # ExpertPQN's minibatch order: Generator(cfg.seed)
    loss, _ = algo.update(rollout)
    assert (log[:, 1] > cfg.max_grad_norm).all()           # every step's gradient was clipped

    # 4 RAdam steps stay in its first, non-adaptive phase (rho_t <= 5 for t <= 5): a step moves a weight by
    # lr x the bias-corrected momentum, no 1 / sqrt(v), so a float32 rounding difference in a gradient
    # element (<= 1e-4: elements are <= the clip norm 10, reductions round within 1e-5 of that) moves a weight
    # by <= lr x 1e-4 per step; and each step may round the weight differently by an ulp (2^-23 relative).
    atol, rtol = 2.5e-4 * 1e-4 * epochs * minibatches, 2.0 ** -23 * epochs * minibatches
    ours = algo.online.state_dict()
    for key, value in expected.items():
        torch.testing.assert_close(ours[key], value, atol=atol, rtol=rtol, msg=lambda m: f"{key}: {m}")
    # the loss reported is the steps' mean (one game: its mean over rows is CleanRL's mse_loss)
    torch.testing.assert_close(loss, log[:, 0].mean(), rtol=1e-5, atol=0)

    # the bound still tells orders apart: another minibatch order moves some weight of every tensor further
    other, _ = reference_from(initial, cfg.seed + 1)
    for key, value in expected.items():
        assert ((other[key] - value).abs() > atol + rtol * value.abs()).any(), key


def test_pqn_update_refuses_minibatches_that_do_not_divide_the_rows():
    network = build_network("nature_ln", 6)
    rollout = random_rollout(3, 2, seed=2)
    with pytest.raises(ValueError, match=r"minibatches must divide the rollout's rows \(6\), got 4"):
        pqn_update(network, torch.optim.RAdam(network.parameters()), rollout.obs, rollout.action, rollout.reward,
                   epochs=1, minibatches=4, generator=torch.Generator(), max_grad_norm=10.0)


def test_cleanrl_pqn_loop_runs_whole_rollouts_and_times_from_the_frame_given(one_torch_thread):
    # 2 envs x 8 steps x 4 frames = 64 frames per rollout: 2 whole rollouts of 150 frames
    result = train_cleanrl_pqn("pong", frames=150, num_envs=2, num_steps=8, epochs=2, minibatches=2,
                               timed_from_frame=64)
    assert result["frames"] == 128 and result["agent_steps"] == 32
    assert result["updates"] == 2 and result["gradient_steps"] == 8
    assert math.isfinite(result["loss"]) and result["steady_fps"] > 0
