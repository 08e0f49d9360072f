"""The learner (run/learner.py): what CUDA-graph capture needs of an update, checked on the CPU, and the
metrics it sums on the device and reads once per log row.

A captured update may not read the device from the host (no .item(), .cpu(), .tolist(), no Python branch
on a tensor) and must keep its shapes; the GPU capture itself runs only where CUDA is (tests marked cuda).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from actormimic_fast import MultiGameEnvPool, ReplayMemory
from actormimic_fast.agents.distill import ActorMimic, DistillConfig, load_experts
from actormimic_fast.agents.dqn import DQNConfig, ExpertDQN
from actormimic_fast.agents.multitask_dqn import MultitaskDQN, MultitaskDQNConfig
from actormimic_fast.run.processes import ProcessInfo
from actormimic_fast.run.learner import Learner
from test_run_loop import save_sharp_experts

def make_expert(cfg, replay, legal, device=torch.device("cpu")) -> ExpertDQN:
    """A one-game expert learning from replay (a plain ReplayMemory: the one memory of its one game)."""
    memories = SimpleNamespace(memories=[replay])
    return ExpertDQN(cfg, ["pong"], legal[:1], 1, device, memories, [Path("unused")], {"kind": "expert"})


HOST_READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__")


@contextlib.contextmanager
def no_host_reads(monkeypatch):
    """Any read of a tensor's values by the host raises while inside."""
    def forbidden(name):
        def read(self, *args, **kwargs):
            raise AssertionError(f"the update read a tensor on the host: Tensor.{name}")
        return read

    with monkeypatch.context() as patch:
        for name in HOST_READS:
            patch.setattr(torch.Tensor, name, forbidden(name))
        yield


def filled_replay(games, envs_per_game=1, steps=120, columns=False, **kwargs):
    """A replay of random legal play; columns: store each action as its index in the game's legal set
    (an expert's network outputs) instead of its full-set index."""
    with MultiGameEnvPool(games, envs_per_game=envs_per_game, seed=0) as pool:
        replay = ReplayMemory.for_pool(pool, 1_000, **kwargs)
        rng = np.random.default_rng(0)
        out = pool.reset()
        actions = np.zeros(pool.num_envs, np.int64)
        replay.add_step(out, actions)
        for _ in range(steps):
            actions = np.array([rng.choice(np.flatnonzero(m)) for m in pool.env_action_masks])
            out = pool.step(actions)
            replay.add_step(out, np.array([np.flatnonzero(pool.env_action_masks[e]).tolist().index(a)
                                           for e, a in enumerate(actions)]) if columns else actions)
        return replay, np.array(pool.action_masks), pool.game_ids.astype(np.int64), [pool.legal_actions(g) for g in range(pool.num_games)]


@pytest.mark.parametrize("changes", [dict(), dict(optimizer="authors_adam", double_dqn=True, n_step=3),
                                     dict(loss="mse", loss_reduction="mean", target_update=2)])
def test_expert_update_is_capturable(monkeypatch, changes):
    replay, _, _, legal = filled_replay(["pong"], columns=True)
    cfg = DQNConfig(device="cpu", batch_size=8, **changes)
    algo = make_expert(cfg, replay, legal)
    assert algo.capturable
    batch = algo.sample(replay, replay.empty_batch(algo.batch_rows))
    before = [p.clone() for p in algo.online.parameters()]
    with no_host_reads(monkeypatch):
        for updates in range(1, 4):
            metrics = algo.update(batch)
            algo.after_update(updates)
    assert len(metrics) == len(algo.METRICS) and all(m.dim() == 0 for m in metrics)
    assert any(not torch.equal(a, b) for a, b in zip(before, algo.online.parameters()))


def test_mdqn_update_is_capturable_and_mcdqn_says_it_is_not(monkeypatch):
    replay, masks, env_game_ids, _ = filled_replay(["pong", "breakout"])
    cfg = MultitaskDQNConfig(games="pong,breakout", device="cpu", batch_size=8, replay_capacity=2_000)
    algo = MultitaskDQN(cfg, masks, env_game_ids, torch.device("cpu"), Path("unused"), replay)
    batch = algo.sample(replay, replay.empty_batch(algo.batch_rows))
    with no_host_reads(monkeypatch):
        algo.update(batch)
    mcdqn = MultitaskDQN(cfg.replace(variant="mcdqn"), masks, env_game_ids, torch.device("cpu"), Path("unused"),
                         replay)
    assert algo.capturable and not mcdqn.capturable     # MCDQN groups rows per game on the host


def test_actor_mimic_update_is_capturable(monkeypatch, tmp_path):
    replay, _, env_game_ids, legal = filled_replay(["pong", "breakout"])
    # torch's Adam reads its step count on the host unless capturable, which it is made on CUDA (below)
    cfg = DistillConfig(experts=save_sharp_experts(tmp_path), beta=0.01, per_game=4, device="cpu",
                        optimizer="authors_adam")
    run = SimpleNamespace(device=torch.device("cpu"), process=ProcessInfo(0, 1, 0), segment=0, lead=True,
                          out_dir=tmp_path)
    algo = ActorMimic(cfg, load_experts(cfg.expert_paths), legal, env_game_ids, run, replay)
    batch = algo.sample(replay, replay.empty_batch(algo.batch_rows))
    with no_host_reads(monkeypatch):
        policy, feature = algo.update(batch)
    assert algo.capturable and policy.dim() == 0 and feature.dim() == 0


def test_adam_is_made_capturable_for_cuda_graphs():
    from actormimic_fast.models.optimizers import make_optimizer

    params = [torch.nn.Parameter(torch.zeros(3))]
    assert make_optimizer("adam", params, lr=1e-3, capturable=True).defaults["capturable"]
    assert not make_optimizer("adam", params, lr=1e-3).defaults["capturable"]


def test_host_reads_are_caught(monkeypatch):
    with no_host_reads(monkeypatch), pytest.raises(AssertionError, match="Tensor.item"):
        torch.ones(()).item()


def test_metrics_are_summed_per_update_and_read_once_per_row():
    replay, _, _, legal = filled_replay(["pong"], columns=True)
    algo = make_expert(DQNConfig(device="cpu", batch_size=8), replay, legal)
    learner = Learner(algo, replay, torch.device("cpu"), threaded=False)
    assert all(np.isnan(v) for v in learner.read_metrics().values())
    losses = []
    original = algo.update
    algo.update = lambda batch: (losses.append(out := original(batch)) or out)
    learner.credit(3.5)          # three whole updates now, half an update left for later
    assert learner.updates == 3 and learner.pending_credit == 0.5
    metrics = learner.read_metrics()
    assert metrics["loss"] == pytest.approx(float(np.mean([l.item() for l, _ in losses])), rel=1e-6)
    assert metrics["q_mean"] == pytest.approx(float(np.mean([q.item() for _, q in losses])), rel=1e-6)
    assert all(np.isnan(v) for v in learner.read_metrics().values())   # read resets the sums


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("optimizer", ["rmsprop", "adam", "authors_adam"])
def test_graph_captured_updates_equal_eager_updates(optimizer):
    """K updates replayed from captured graphs give the weights of K eager updates on the same batches."""
    replay, _, _, legal = filled_replay(["pong"], steps=300, columns=True)
    device = torch.device("cuda")
    cfg = DQNConfig(device="cuda", batch_size=32, optimizer=optimizer, target_update=5, seed=3)
    weights = []
    for graphs in (False, True):
        algo = make_expert(cfg, replay, legal, device)
        learner = Learner(algo, replay, device, threaded=False, cuda_graphs=graphs)
        seeds = iter(range(1_000))                     # the same minibatches in both runs
        algo.sample = lambda r, out, s=seeds: r.sample(cfg.batch_size, seed=next(s), out=out)
        learner.credit(12.0)
        torch.cuda.synchronize()
        weights.append([p.detach().clone() for p in algo.online.parameters()])
        assert learner.updates == 12 and (learner._use_graphs == graphs)
    for eager, captured in zip(*weights):
        torch.testing.assert_close(captured, eager, rtol=1e-4, atol=1e-5)
