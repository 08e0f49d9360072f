"""Actor-Mimic multitask distillation (Parisotto et al. 2016, section 3) on the C++ pool and replay.

    summary = distill(DistillConfig(experts="runs/pong/checkpoint.pt,runs/boxing/checkpoint.pt", out="runs/amn"))

One Actor-Mimic Network (AMN, 18 outputs) learns every game's expert DQN at once:

    L = sum over the minibatch of  L_policy(s) + beta * L_feature(s)                          (eq. 6)
    L_policy(s)  = - sum_{a in A_i} softmax(Q_Ei(s) / tau)_a log softmax_{A_i}(AMN(s))_a      (eq. 4)
    L_feature(s) = || f_i(h_AMN(s)) - h_Ei(s) ||^2, f_i a linear head per game               (eq. 5)

where A_i is game i's legal action set (columns outside it are masked out of both softmaxes by the
fused op ``ops.masked_softmax_xent``) and h is a network's pre-output features. ``loss_reduction`` sums
(default, as the authors' code back-propagates every sample's gradient unscaled) or averages over rows.

Data flow of one iteration (one *step*: every env of the pool plays one agent step):

    out = pool.recv()                  # every env's s_t, r_t, flags (the C++ workers stepped them)
    replay.add_step(out, a_{t-1})      # one replay per game, frames stored once
    a_t = epsilon-greedy over A_i      # the AMN's masked argmax (or the expert's), epsilon = 0.1
    pool.send(a_t)                     # the envs step now ...
    update() x E / update_every        # ... while the learner updates on per_game rows of every game
    (test epoch, log, checkpoint when due)

The experts' forward passes are one call whatever the number of games (``ExpertEnsemble``: their
parameters stacked, ``torch.vmap`` over the per-game groups of the minibatch, so the convolutions run as
grouped convolutions). Each expert's head is padded to the 18-action set (output j of the expert plays
full-set action ``legal[j]``; the other columns are 0 and masked), so teacher and student share columns.

Under torchrun every process steps all games with its own seeds, samples its own minibatch, and
DistributedDataParallel averages the gradients; process 0 alone tests, logs and writes checkpoints.
"""

from __future__ import annotations

import collections
import copy
import datetime
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .. import ops
from ..checkpoint import load_checkpoint, save_checkpoint
from ..distributed import device_for_process, process_info
from ..env import MultiGameEnvPool
from ..evaluation import evaluate
from ..games import NUM_ACTIONS, canonical_name
from ..metrics import RunLogger, write_run_info
from ..networks import build_network, scale_frames
from ..optim import AuthorsAdam
from ..replay import ReplayMemory
from .training_state import restore_rng, rng_state
from .distill_config import DistillConfig
from .dqn import load_expert, resolve_device

CHECKPOINT_NAME = "checkpoint.pt"


# -- experts --------------------------------------------------------------------------------------
def load_experts(paths: list[str], games: list[str] | None = None,
                 device: str | torch.device = "cpu") -> tuple[list[str], list[nn.Module], list[dict]]:
    """Load one expert per path; returns (games in the checkpoints' order, networks, metas).

    Raises FileNotFoundError for a missing file and ValueError for a file that is not an expert, two
    experts of one game, experts of different architectures (they are batched into one call), or a
    ``games`` list that does not name exactly the experts' games.
    """
    if not paths:
        raise ValueError(f"experts must name one expert checkpoint per game, got {paths!r}")
    networks, metas = [], []
    for path in paths:
        network, meta = load_expert(path, device=device)
        networks.append(network)
        metas.append(meta)
    found = [meta["game"] for meta in metas]
    if len(set(found)) != len(found):
        repeated = sorted({g for g in found if found.count(g) > 1})
        raise ValueError(f"experts must be for different games, got {repeated} more than once in {paths}")
    if games:
        wanted = [canonical_name(g) for g in games]
        if sorted(wanted) != sorted(found):
            raise ValueError(f"games {wanted} do not match the experts' games {found} "
                             f"(experts {paths})")
    architectures = {meta["game"]: meta["architecture"] for meta in metas}
    if len(set(architectures.values())) != 1:
        raise ValueError(f"experts must share one architecture (their passes are batched), got {architectures}")
    return found, networks, metas


class _FullActionExpert(nn.Module):
    """An expert whose head has one row per full-set action: row legal[j] = the expert's output j, others 0."""

    def __init__(self, expert: nn.Module, legal_actions, num_actions: int = NUM_ACTIONS):
        super().__init__()
        self.trunk = copy.deepcopy(expert.trunk)
        self.head = nn.Linear(expert.head.in_features, num_actions)
        legal = torch.as_tensor(np.asarray(legal_actions), dtype=torch.int64, device=expert.head.weight.device)
        with torch.no_grad():
            self.head.to(expert.head.weight.device)
            self.head.weight.zero_()
            self.head.bias.zero_()
            self.head.weight[legal] = expert.head.weight
            self.head.bias[legal] = expert.head.bias

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(Q-values over the 18 actions [B, 18], pre-output features h(s) [B, D])."""
        h = self.trunk(scale_frames(obs))
        return self.head(h), h


class ExpertEnsemble:
    """Every game's expert evaluated in one vmapped call over per-game groups of states.

    ensemble(obs) with obs [G, n, stack, 84, 84] (group g holds states of game g) returns teacher Q-values
    [G, n, 18] (illegal columns 0) and expert features [G, n, D]. The experts are frozen.
    """

    def __init__(self, experts: list[nn.Module], legal_actions: list, num_actions: int = NUM_ACTIONS):
        if len(experts) != len(legal_actions):
            raise ValueError(f"one action set per expert: got {len(experts)} experts and "
                             f"{len(legal_actions)} action sets")
        padded = [_FullActionExpert(e, legal, num_actions) for e, legal in zip(experts, legal_actions)]
        params, buffers = torch.func.stack_module_state(padded)
        self.params = {name: p.detach() for name, p in params.items()}
        self.buffers = buffers
        self.num_games = len(experts)
        self.feature_dim = padded[0].head.in_features
        self._base = copy.deepcopy(padded[0]).to("meta")   # structure only; weights come from self.params
        self._batched = torch.vmap(self._one)

    def _one(self, params, buffers, obs):
        return torch.func.functional_call(self._base, (params, buffers), (obs,))

    @torch.no_grad()
    def __call__(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if obs.dim() != 5 or obs.shape[0] != self.num_games:
            raise ValueError(f"obs must be [games={self.num_games}, n, stack, 84, 84], got {tuple(obs.shape)}")
        return self._batched(self.params, self.buffers, obs)


# -- the student ----------------------------------------------------------------------------------
class Student(nn.Module):
    """The AMN and, for feature regression, one linear head per game mapping h_AMN to that expert's h.

    forward(obs) takes minibatch rows grouped by game (replay.sample(per_game=...)'s layout: equal groups
    in game order) and returns the AMN's logits [B, 18] and the heads' predictions [B, D_expert] (None
    without heads). One module so that DistributedDataParallel averages the heads' gradients too.
    """

    def __init__(self, amn: nn.Module, games: list[str], expert_feature_dim: int, feature_regression: bool):
        super().__init__()
        self.amn = amn
        self.games = list(games)
        self.feature_heads = nn.ModuleDict(
            {g: nn.Linear(amn.feature_dim, expert_feature_dim) for g in games} if feature_regression else {})

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.amn.features(obs)
        logits = self.amn.head(h)
        if not self.feature_heads:
            return logits, None
        groups = h.view(len(self.games), -1, h.shape[1])
        predicted = torch.cat([self.feature_heads[g](group) for g, group in zip(self.games, groups)])
        return logits, predicted


def actor_mimic_loss(student_logits: torch.Tensor, teacher_q: torch.Tensor, action_masks: torch.Tensor,
                     game_id: torch.Tensor, tau: float, reduction: str = "sum",
                     predicted_features: torch.Tensor | None = None, expert_features: torch.Tensor | None = None,
                     beta: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(L_policy + beta * L_feature, L_policy, L_feature), each reduced over rows by sum or mean.

    action_masks: bool [G, 18] per-game legal actions; game_id: int64 [B]. L_feature is 0 without heads.
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    policy = ops.masked_softmax_xent(student_logits.float(), teacher_q.float(), action_masks, tau=tau,
                                     game_id=game_id, reduction=reduction)
    if predicted_features is None or beta == 0:
        feature = policy.new_zeros(())
        return policy, policy, feature
    per_row = (predicted_features.float() - expert_features.float()).square().sum(1)
    feature = per_row.sum() if reduction == "sum" else per_row.mean()
    return policy + beta * feature, policy, feature


# -- acting -----------------------------------------------------------------------------------------
def masked_argmax(scores: torch.Tensor, masks: torch.Tensor) -> np.ndarray:
    """Each row's best legal action (full-set index): argmax of scores [n, 18] where masks [n, 18] is True."""
    return scores.float().masked_fill(~masks, float("-inf")).argmax(1).cpu().numpy()


def random_legal_actions(masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One uniformly random legal action (full-set index) per row of bool masks [n, 18]."""
    rank = rng.integers(0, masks.sum(1))                       # which legal action, per row
    return (np.cumsum(masks, 1) > rank[:, None]).argmax(1)     # the column holding the rank-th legal one


def make_optimizer(cfg: DistillConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, eps=cfg.adam_eps)
    if cfg.optimizer == "authors_adam":
        return AuthorsAdam(params, lr=cfg.lr)
    raise ValueError(f"optimizer must be adam or authors_adam, got {cfg.optimizer!r}")


def amn_meta(games: list[str], legal_actions: list, architecture: str, beta: float) -> dict:
    """What an AMN checkpoint holds (the transfer command relies on these keys)."""
    return {"kind": "amn", "games": list(games), "actions": [[int(a) for a in legal] for legal in legal_actions],
            "architecture": architecture, "num_actions": NUM_ACTIONS, "beta": float(beta)}


# -- training ---------------------------------------------------------------------------------------
def distill(cfg: DistillConfig, resume: bool = False) -> dict:
    """Train an AMN as cfg says; returns the counters, the last test results, the checkpoint path and the
    trained modules (``amn``, ``feature_heads``).

    Under torchrun (WORLD_SIZE > 1) it joins or creates the default process group (gloo on CPU, nccl on
    CUDA) and trains with DistributedDataParallel. resume=True continues from <cfg.out>/checkpoint.pt.
    """
    info = process_info()
    created_group = False
    if info.world_size > 1 and not dist.is_initialized():
        device = resolve_device(device_for_process(cfg.device, info))
        if device.type == "cuda":
            torch.cuda.set_device(device)
        # Process 0 tests alone while the others wait in their next all-reduce: allow a long test epoch.
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                timeout=datetime.timedelta(minutes=120))
        created_group = True
    try:
        return _distill(cfg, resume, info)
    finally:
        if created_group:
            dist.destroy_process_group()


def _distill(cfg: DistillConfig, resume: bool, info) -> dict:
    world, rank = info.world_size, info.rank
    lead = rank == 0
    out_dir = Path(cfg.out)
    ckpt_path = out_dir / CHECKPOINT_NAME
    device = resolve_device(device_for_process(cfg.device, info))
    cores = os.cpu_count() or 1

    # Experts first: they name the games.
    expert_paths = cfg.expert_paths()
    games, experts, expert_metas = load_experts(expert_paths, cfg.game_list(), device)
    num_games = len(games)

    payload = None
    if resume and ckpt_path.exists():
        payload = load_checkpoint(ckpt_path, expect={"kind": "amn", "games": games, "architecture": cfg.architecture,
                                                     "beta": float(cfg.beta)}, map_location="cpu")
    counters = dict(steps=0, frames=0, updates=0, episodes=0, epochs=0, resumes=0, update_credit=0.0,
                    wall_s=0.0, experts_tested=0)
    if payload is not None:
        counters.update(payload["counters"])
        counters["resumes"] += 1
    segment = counters["resumes"]   # new env and replay seeds after each resume (no repeated episodes)

    # Envs: all games in one pool; each process its own seeds.
    env_threads = cfg.env_threads or min(num_games * cfg.envs_per_game, cores)
    if device.type == "cpu":
        # The pool's threads step envs while the learner runs: leave them their cores (see agents/dqn.py).
        torch.set_num_threads(cfg.torch_threads or max(1, cores - env_threads))
    pool = MultiGameEnvPool(games, envs_per_game=cfg.envs_per_game,
                            seed=cfg.seed + 7919 * segment + 1_000_003 * rank, num_threads=env_threads + 1,
                            frame_skip=cfg.frame_skip, noop_max=cfg.noop_max,
                            max_episode_frames=cfg.max_episode_frames)
    try:
        legal_actions = [pool.legal_actions(g) for g in range(num_games)]
        for game, meta, legal in zip(games, expert_metas, legal_actions):
            if meta["actions"] != [int(a) for a in legal]:
                raise ValueError(f"the expert for {game} plays actions {meta['actions']}, but the game's legal "
                                 f"actions are {[int(a) for a in legal]}")
        meta = amn_meta(games, legal_actions, cfg.architecture, cfg.beta)
        if payload is not None and payload["meta"]["actions"] != meta["actions"]:
            raise ValueError(f"checkpoint {str(ckpt_path)!r} has actions {payload['meta']['actions']}, "
                             f"the games' are {meta['actions']}")
        action_masks = torch.from_numpy(pool.action_masks.copy()).to(device)        # bool [G, 18]
        env_masks_np = pool.env_action_masks.copy()                                # bool [num_envs, 18]
        env_masks = torch.from_numpy(env_masks_np).to(device)

        replay = ReplayMemory.for_pool(pool, cfg.replay_capacity, seed=cfg.seed + segment + 1_000_003 * rank)
        teacher = ExpertEnsemble(experts, legal_actions)
        del experts

        torch.manual_seed(cfg.seed)   # same initial weights on every process (DDP broadcasts them anyway)
        amn = build_network(cfg.architecture, NUM_ACTIONS)
        student = Student(amn, games, teacher.feature_dim, feature_regression=cfg.beta > 0).to(device)
        optimizer = make_optimizer(cfg, student.parameters())
        rng = np.random.default_rng([cfg.seed, rank, segment])
        refill = 0   # transitions per game the replay must hold again after a resume without a saved replay
        if payload is not None:
            amn.load_state_dict(payload["online"])
            for game, state in payload["feature_heads"].items():
                student.feature_heads[game].load_state_dict(state)
            optimizer.load_state_dict(payload["optimizer"])
            if lead:
                restore_rng(rng, payload["rng"])
            if "replay" in payload:
                replay.load_state_dict(payload["replay"])
            else:
                refill = min(cfg.learning_starts * cfg.envs_per_game, cfg.replay_capacity)
        del payload
        trained = student
        if world > 1:
            trained = nn.parallel.DistributedDataParallel(
                student, device_ids=[device.index] if device.type == "cuda" else None)

        def checkpoint() -> None:
            state = {"online": amn.state_dict(),
                     "feature_heads": {g: head.state_dict() for g, head in student.feature_heads.items()},
                     "optimizer": optimizer.state_dict(), "counters": dict(counters),
                     "rng": rng_state(rng), "config": cfg.to_dict(), "experts": dict(zip(games, expert_paths))}
            if cfg.save_replay:
                state["replay"] = replay.state_dict()
            save_checkpoint(ckpt_path, state, meta)

        pinned = device.type == "cuda"
        batch_buffer = replay.empty_batch(cfg.per_game * num_games, pin_memory=pinned)
        copy_done = torch.cuda.Event() if pinned else None
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp)

        def update() -> tuple[torch.Tensor, torch.Tensor]:
            """One gradient step on per_game rows of every game; returns (policy loss, feature loss)."""
            if copy_done is not None:
                copy_done.synchronize()   # the previous batch's host-to-device copy has left the pinned buffer
            batch = replay.sample(per_game=cfg.per_game, out=batch_buffer)
            if pinned:
                batch = batch.to(device, non_blocking=True)
                copy_done.record()
            s_t, game_id = batch.obs, batch.game_id
            with autocast:
                teacher_q, expert_h = teacher(s_t.view(num_games, cfg.per_game, *s_t.shape[1:]))
                student_logits, predicted_h = trained(s_t)
            loss, policy_loss, feature_loss = actor_mimic_loss(
                student_logits, teacher_q.flatten(0, 1), action_masks, game_id, cfg.tau, cfg.loss_reduction,
                predicted_h, expert_h.flatten(0, 1), cfg.beta)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            counters["updates"] += 1
            return policy_loss.detach(), feature_loss.detach()

        def test_games(act, policy: str, agreement: dict | None = None) -> dict:
            results = evaluate(act, games, frames_per_game=cfg.test_epoch_frames, epsilon=cfg.test_epsilon,
                               envs_per_game=cfg.test_envs, seed=cfg.seed + 100_003 + counters["epochs"],
                               noop_max=cfg.noop_max, frame_skip=cfg.frame_skip,
                               max_episode_frames=cfg.max_episode_frames)
            rows = {}
            for g, game in enumerate(games):
                r = results[game]
                share = None if agreement is None else agreement["agree"][g] / max(agreement["seen"][g], 1)
                logger.row("test", epoch=counters["epochs"], frames=counters["frames"], game=game, policy=policy,
                           mean=r.mean, max=r.max, episodes=r.episodes, test_frames=r.frames,
                           partial_return=r.partial_return, agreement=share)
                rows[game] = {"mean": r.mean, "max": r.max, "episodes": r.episodes, "agreement": share}
            return rows

        def test_epoch() -> dict:
            """The AMN on every game (with its agreement with the expert); the experts once per run."""
            groups = (num_games, cfg.test_envs)
            agreement = {"agree": np.zeros(num_games, np.int64), "seen": np.zeros(num_games, np.int64)}
            test_ids = np.repeat(np.arange(num_games), cfg.test_envs)   # evaluate's pool: envs grouped by game

            @torch.no_grad()
            def amn_act(obs: torch.Tensor, game_ids: torch.Tensor) -> np.ndarray:
                obs = obs.to(device, non_blocking=True)
                masks = action_masks[test_ids]
                a_amn = masked_argmax(amn(obs), masks)
                teacher_q, _ = teacher(obs.view(*groups, *obs.shape[1:]))
                a_expert = masked_argmax(teacher_q.flatten(0, 1), masks)
                np.add.at(agreement["agree"], test_ids, a_amn == a_expert)
                np.add.at(agreement["seen"], test_ids, 1)
                return a_amn

            @torch.no_grad()
            def expert_act(obs: torch.Tensor, game_ids: torch.Tensor) -> np.ndarray:
                obs = obs.to(device, non_blocking=True)
                teacher_q, _ = teacher(obs.view(*groups, *obs.shape[1:]))
                return masked_argmax(teacher_q.flatten(0, 1), action_masks[test_ids])

            amn.eval()
            result = {"epoch": counters["epochs"], "amn": test_games(amn_act, "amn", agreement)}
            amn.train()
            if cfg.test_experts and not counters["experts_tested"]:
                # The experts never change: one test epoch each (same budget and seeds) is their score.
                result["expert"] = test_games(expert_act, "expert")
                counters["experts_tested"] = 1
            return result

        logger = None
        if lead:
            write_run_info(out_dir, kind="amn", games=games, architecture=cfg.architecture, beta=float(cfg.beta),
                           experts=dict(zip(games, expert_paths)), frame_skip=cfg.frame_skip,
                           train_epoch_frames=cfg.train_epoch_frames, world_size=world, frames_per_game=True)
            logger = RunLogger(out_dir, total_frames=cfg.frames_per_game, initial_frames=counters["frames"],
                               tensorboard=cfg.tensorboard, progress=cfg.progress,
                               description=f"AMN x{num_games}")
        frames_per_step = cfg.envs_per_game * cfg.frame_skip * world      # per game, over all processes
        recent_returns: collections.deque = collections.deque(maxlen=100)
        policy_losses, feature_losses = [], []
        last_losses = {"policy_loss": math.nan, "feature_loss": math.nan}   # means over the last log interval
        last_test: dict = {}
        learning = False    # latched: once every process's replay is ready, it stays ready
        next_log = counters["frames"] + cfg.log_every
        next_checkpoint = counters["frames"] + cfg.checkpoint_every
        log_time, log_frames = time.perf_counter(), counters["frames"]
        start_time, start_wall = time.perf_counter(), counters["wall_s"]
        a_tm1 = np.zeros(pool.num_envs, np.int64)      # each env's last action (full-set index)
        obs_tensor = pool.batch_tensors.obs
        env_order = torch.arange(pool.num_envs)

        try:
            pool.async_reset()
            out = pool.recv()
            replay.add_step(out, a_tm1[out.env_id])    # episode starts: the actions are ignored
            while counters["frames"] < cfg.frames_per_game:
                # recv() returns every env in finishing order: put the rows in env order (grouped by game).
                order = torch.from_numpy(np.argsort(out.env_id, kind="stable"))
                s_t = obs_tensor.index_select(0, order)

                # Act: epsilon-greedy over each game's legal actions (the AMN's, or the expert's, argmax).
                a_t = random_legal_actions(env_masks_np, rng)
                greedy = rng.random(pool.num_envs) >= cfg.epsilon
                if greedy.any():
                    with torch.no_grad(), autocast:
                        s_t = s_t.to(device, non_blocking=True)
                        if cfg.actor == "amn":
                            scores = amn(s_t)
                        else:
                            scores = teacher(s_t.view(num_games, cfg.envs_per_game, *s_t.shape[1:]))[0].flatten(0, 1)
                    a_t = np.where(greedy, masked_argmax(scores, env_masks), a_t)
                pool.send(a_t, env_order.numpy())
                a_tm1[:] = a_t
                counters["steps"] += 1
                counters["frames"] += frames_per_step

                # Learn while the envs step.
                if not learning and counters["steps"] >= cfg.learning_starts:
                    ready = min(replay.num_transitions(g) for g in range(num_games)) >= max(refill, cfg.per_game)
                    if world > 1:
                        flag = torch.tensor([int(ready)], device=device if device.type == "cuda" else "cpu")
                        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
                        ready = bool(flag.item())
                    learning = ready
                if learning:
                    counters["update_credit"] += cfg.envs_per_game / cfg.update_every
                    while counters["update_credit"] >= 1.0:
                        counters["update_credit"] -= 1.0
                        policy_loss, feature_loss = update()
                        policy_losses.append(policy_loss)
                        feature_losses.append(feature_loss)

                # Test epoch, logs and checkpoint when due (tests, logs and files: process 0 only).
                if cfg.test_epoch_frames and counters["frames"] >= (counters["epochs"] + 1) * cfg.train_epoch_frames:
                    counters["epochs"] += 1
                    if lead:
                        last_test = test_epoch()
                if counters["frames"] >= next_log:
                    now = time.perf_counter()
                    fps = (counters["frames"] - log_frames) * num_games / max(now - log_time, 1e-9)
                    policy_value = float(torch.stack(policy_losses).mean()) if policy_losses else math.nan
                    feature_value = float(torch.stack(feature_losses).mean()) if feature_losses else math.nan
                    recent = float(np.mean(recent_returns)) if recent_returns else math.nan
                    if lead:
                        loss_value = policy_value + cfg.beta * feature_value if cfg.beta else policy_value
                        logger.row("progress", frames=counters["frames"], wall_s=start_wall + now - start_time,
                                   fps=fps, epsilon=cfg.epsilon, loss=loss_value, recent_return=recent,
                                   updates=counters["updates"])
                        logger.advance(counters["frames"] - log_frames, fps=fps, loss=policy_value)
                    last_losses = {"policy_loss": policy_value, "feature_loss": feature_value}
                    policy_losses.clear()
                    feature_losses.clear()
                    log_time, log_frames = now, counters["frames"]
                    next_log = counters["frames"] + cfg.log_every
                if counters["frames"] >= next_checkpoint:
                    counters["wall_s"] = start_wall + time.perf_counter() - start_time
                    if lead:
                        checkpoint()
                    next_checkpoint = counters["frames"] + cfg.checkpoint_every

                # Collect the step: store it, count finished episodes.
                out = pool.recv()
                replay.add_step(out, a_tm1[out.env_id])
                for row in np.flatnonzero(out.done):
                    counters["episodes"] += 1
                    recent_returns.append(float(out.episode_return[row]))
                    if lead:
                        logger.row("episodes", frames=counters["frames"], game=games[out.game_id[row]],
                                   **{"return": float(out.episode_return[row])},
                                   length=int(out.episode_length[row]))

            counters["wall_s"] = start_wall + time.perf_counter() - start_time
            if lead:
                checkpoint()
        finally:
            if logger is not None:
                logger.close()
    finally:
        pool.close()
    return {**counters, **last_losses, "games": games, "last_test": last_test, "checkpoint": str(ckpt_path),
            "recent_return": float(np.mean(recent_returns)) if recent_returns else math.nan,
            "amn": amn.eval(), "feature_heads": student.feature_heads}
