"""Expert DQN (Mnih et al. 2015) on the C++ pool and replay: the algorithm, top to bottom.

    summary = train_expert(DQNConfig(game="pong", frames=10_000_000, out="runs/pong"))

Data flow of one iteration (the CPU and the GPU/learner stay busy at once):

    out = pool.recv()                  # the envs that finished their step: obs s_t, r_t, flags
    replay.add_step(out, a_{t-1})      # one record per env (frames stored once, in C++)
    a_t = epsilon-greedy(Q(s_t))       # over the game's minimal action set, mapped to full actions
    pool.send(a_t)                     # C++ workers step the envs now ...
    update() x (B / update_every)      # ... while the learner does the gradient updates
    (test epoch, log, checkpoint when due)

One gradient update per ``update_every`` agent steps summed over envs keeps the paper's ratio whatever
``num_envs`` is. Names follow DQN Zoo: ``s_tm1, a_tm1, r_t, discount_t, s_t`` for a sampled transition.

The network's outputs index the game's minimal action set; ``legal_actions[i]`` is the full-set action
of output i. Checkpoints record it (``meta["actions"]``) with the game and the architecture.
"""

from __future__ import annotations

import collections
import copy
import math
import os
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint import load_checkpoint, save_checkpoint
from ..config import DQNConfig
from ..env import MultiGameEnvPool
from ..evaluation import evaluate, greedy_act
from ..games import canonical_name
from ..metrics import RunLogger, write_run_info
from ..networks import build_network
from ..optim import AuthorsAdam, DeepMindRMSprop
from ..replay import ReplayMemory
from .training_state import q_learning_state, restore_q_learning

CHECKPOINT_NAME = "checkpoint.pt"


# -- the pieces of the algorithm (pure functions, tested against hand-computed values) -------------------
def epsilon_at(frame: int, start: float, end: float, decay_frames: int) -> float:
    """Linear decay from start (frame 0) to end (frame decay_frames), constant afterwards."""
    if decay_frames <= 0:
        return end
    fraction = min(1.0, frame / decay_frames)
    return start + fraction * (end - start)


def td_target(r_t: torch.Tensor, discount_t: torch.Tensor, q_t_target: torch.Tensor,
              q_t_online: torch.Tensor | None = None) -> torch.Tensor:
    """y = r_t + discount_t * Q_target(s_t, a*), with a* = argmax Q_target (DQN) or argmax Q_online (Double DQN).

    r_t is the (clipped, possibly n-step) return and discount_t = gamma^k, or 0 after a termination.
    """
    if q_t_online is None:
        bootstrap = q_t_target.max(dim=1).values
    else:
        a_star = q_t_online.argmax(dim=1, keepdim=True)
        bootstrap = q_t_target.gather(1, a_star).squeeze(1)
    return r_t + discount_t * bootstrap


def td_loss(q_tm1_a: torch.Tensor, y: torch.Tensor, kind: str = "huber", reduction: str = "sum") -> torch.Tensor:
    """Huber (quadratic for |TD error| <= 1, linear beyond: the paper's clipped TD error) or squared error."""
    if kind == "huber":
        loss = F.huber_loss(q_tm1_a, y, reduction="none", delta=1.0)
    elif kind == "mse":
        loss = 0.5 * (q_tm1_a - y).square()
    else:
        raise ValueError(f"loss must be 'huber' or 'mse', got {kind!r}")
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean()
    raise ValueError(f"loss_reduction must be 'sum' or 'mean', got {reduction!r}")


@torch.no_grad()
def sync_target(online: torch.nn.Module, target: torch.nn.Module) -> None:
    """target <- online (a full copy of the parameters)."""
    for p_target, p_online in zip(target.parameters(), online.parameters()):
        p_target.copy_(p_online)


def make_optimizer(cfg: DQNConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "rmsprop":
        return DeepMindRMSprop(params, lr=cfg.lr, momentum=cfg.rmsprop_momentum, eps=cfg.rmsprop_eps)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, eps=cfg.adam_eps)
    if cfg.optimizer == "authors_adam":
        return AuthorsAdam(params, lr=cfg.lr)
    raise ValueError(f"optimizer must be rmsprop, adam or authors_adam, got {cfg.optimizer!r}")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} but torch.cuda.is_available() is False (use --device cpu)")
    return device


def expert_meta(cfg: DQNConfig, legal_actions) -> dict:
    """What a checkpoint's weights are for; load_checkpoint(expect=...) compares these keys."""
    return {"kind": "expert", "game": canonical_name(cfg.game), "actions": [int(a) for a in legal_actions],
            "architecture": cfg.architecture, "num_actions": len(legal_actions)}


def load_expert(path: str | os.PathLike, game: str | None = None, architecture: str | None = None,
                device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """An expert's online network (eval mode) and its meta; ValueError if it is not for game/architecture."""
    expect = {"kind": "expert"}
    if game is not None:
        expect["game"] = canonical_name(game)
    if architecture is not None:
        expect["architecture"] = architecture
    payload = load_checkpoint(path, expect=expect, map_location=device)
    meta = payload["meta"]
    network = build_network(meta["architecture"], meta["num_actions"]).to(device)
    network.load_state_dict(payload["online"])
    return network.eval(), meta


# -- training ---------------------------------------------------------------------------------------
def train_expert(cfg: DQNConfig, resume: bool = False, *, initial_online: Mapping[str, torch.Tensor] | None = None,
                 run_info: Mapping[str, Any] | None = None) -> dict:
    """Train one expert DQN as cfg says; returns the final counters, last test result and checkpoint path.

    resume=True continues from <cfg.out>/checkpoint.pt when it exists (network, target, optimiser,
    counters, RNG states, and the replay if it was saved; else the replay refills up to learning_starts).
    The envs restart at new episodes: an emulator's state is not part of a checkpoint.

    initial_online: a state_dict for the online network (transfer: weights from an AMN), loaded only when
        the run starts fresh, never over a resumed checkpoint; the target network starts equal to it.
    run_info: how the run started, for run.json and the report, e.g. {"kind": "transfer", "init":
        "amn-policy", ...} (default {"kind": "expert"}). The checkpoint keeps it (meta["run"]) and a resumed
        run must bring the same, so a transfer run cannot be continued as something else.
    """
    run_info = dict(run_info) if run_info is not None else {"kind": "expert"}
    out_dir = Path(cfg.out)
    ckpt_path = out_dir / CHECKPOINT_NAME
    device = resolve_device(cfg.device)
    cores = os.cpu_count() or 1
    env_threads = cfg.env_threads or min(cfg.num_envs, cores)
    if device.type == "cpu":
        # The pool's threads step envs *while* the learner runs: leave them their cores. Oversubscribed
        # OpenMP threads spin at barriers; on 2 cores, 2 torch threads + 1 env thread ran 20x slower.
        torch.set_num_threads(cfg.torch_threads or max(1, cores - env_threads))

    payload = None
    if resume and ckpt_path.exists():
        payload = load_checkpoint(ckpt_path, expect={"kind": "expert", "game": canonical_name(cfg.game),
                                                     "architecture": cfg.architecture}, map_location="cpu")
    counters = dict(frames=0, agent_steps=0, updates=0, episodes=0, epochs=0, resumes=0, update_credit=0.0,
                    wall_s=0.0)
    if payload is not None:
        started_as = payload["meta"].get("run", {"kind": "expert"})   # checkpoints older than meta["run"]
        if started_as != run_info:
            raise ValueError(f"checkpoint {str(ckpt_path)!r} was made for run={started_as!r}, not run={run_info!r}")
        counters.update(payload["counters"])
        counters["resumes"] += 1
    segment = counters["resumes"]   # new env and replay seeds after each resume (no repeated episodes)

    # Envs, replay, networks, optimiser.
    # num_threads counts the caller's thread, which runs the learner between send() and recv(): the
    # pool gets env_threads background threads on top of it.
    pool = MultiGameEnvPool([cfg.game], envs_per_game=cfg.num_envs, seed=cfg.seed + 7919 * segment,
                            num_threads=env_threads + 1,
                            frame_skip=cfg.frame_skip, noop_max=cfg.noop_max,
                            max_episode_frames=cfg.max_episode_frames)
    legal_actions = pool.legal_actions(0)            # network output i -> full-set action legal_actions[i]
    meta = {**expert_meta(cfg, legal_actions), "run": run_info}
    if payload is not None and payload["meta"]["actions"] != meta["actions"]:
        raise ValueError(f"checkpoint {str(ckpt_path)!r} has actions {payload['meta']['actions']}, "
                         f"the game's are {meta['actions']}")
    replay = ReplayMemory.for_pool(pool, cfg.replay_capacity, n_step=cfg.n_step, gamma=cfg.gamma,
                                   life_loss_terminal=cfg.life_loss_terminal, seed=cfg.seed + segment)
    torch.manual_seed(cfg.seed)
    online = build_network(cfg.architecture, len(legal_actions)).to(device)
    if payload is None and initial_online is not None:
        online.load_state_dict(initial_online)
    target = copy.deepcopy(online).requires_grad_(False)
    optimizer = make_optimizer(cfg, online.parameters())
    rng = np.random.default_rng(cfg.seed)
    refill = 0   # transitions the replay must hold before updates go on (a resume without a saved replay)
    if payload is not None and not restore_q_learning(payload, online, target, optimizer, rng, replay):
        refill = min(cfg.learning_starts, cfg.replay_capacity)
    del payload

    def checkpoint() -> None:
        state = q_learning_state(online, target, optimizer, counters, rng, cfg.to_dict(),
                                 replay if cfg.save_replay else None)
        save_checkpoint(ckpt_path, state, meta)

    pinned = device.type == "cuda"
    batch_buffer = replay.empty_batch(cfg.batch_size, pin_memory=pinned)
    copy_done = torch.cuda.Event() if pinned else None
    reward_clip = cfg.reward_clip or None
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp)

    def update() -> tuple[float, float]:
        """One gradient step on a uniform minibatch; returns (loss, mean Q(s_tm1, a_tm1))."""
        if copy_done is not None:
            copy_done.synchronize()   # the previous batch's host-to-device copy has left the pinned buffer
        batch = replay.sample(cfg.batch_size, reward_clip=reward_clip, out=batch_buffer)
        if pinned:
            batch = batch.to(device, non_blocking=True)
            copy_done.record()
        s_tm1, a_tm1, r_t, discount_t, s_t = batch.obs, batch.action, batch.reward, batch.discount, batch.next_obs
        with autocast:
            q_tm1 = online(s_tm1).float()
            with torch.no_grad():
                q_t_target = target(s_t).float()
                q_t_online = online(s_t).float() if cfg.double_dqn else None
        q_tm1_a = q_tm1.gather(1, a_tm1.unsqueeze(1)).squeeze(1)
        y = td_target(r_t, discount_t, q_t_target, q_t_online)
        loss = td_loss(q_tm1_a, y, cfg.loss, cfg.loss_reduction)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        counters["updates"] += 1
        if counters["updates"] % cfg.target_update == 0:
            sync_target(online, target)
        return loss.detach(), q_tm1_a.detach().mean()

    def test_epoch() -> dict:
        online.eval()
        result = evaluate(greedy_act(online, legal_actions, device), [cfg.game],
                          frames_per_game=cfg.test_epoch_frames, epsilon=cfg.test_epsilon,
                          envs_per_game=cfg.test_envs, seed=cfg.seed + 100_003 + counters["epochs"],
                          noop_max=cfg.noop_max, frame_skip=cfg.frame_skip,
                          max_episode_frames=cfg.max_episode_frames)[canonical_name(cfg.game)]
        online.train()
        counters["epochs"] += 1
        logger.row("test", epoch=counters["epochs"], frames=counters["frames"], game=result.game, policy="dqn",
                   mean=result.mean, max=result.max, episodes=result.episodes, test_frames=result.frames,
                   partial_return=result.partial_return)
        return {"epoch": counters["epochs"], "mean": result.mean, "max": result.max, "episodes": result.episodes}

    write_run_info(out_dir, games=[canonical_name(cfg.game)], architecture=cfg.architecture,
                   frame_skip=cfg.frame_skip, train_epoch_frames=cfg.train_epoch_frames, **run_info)
    logger = RunLogger(out_dir, total_frames=cfg.frames, initial_frames=counters["frames"],
                       tensorboard=cfg.tensorboard, progress=cfg.progress, description=canonical_name(cfg.game))
    recent_returns: collections.deque = collections.deque(maxlen=100)
    losses, q_means = [], []
    last_test: dict = {}
    next_log = counters["frames"] + cfg.log_every
    next_checkpoint = counters["frames"] + cfg.checkpoint_every
    log_time, log_frames = time.perf_counter(), counters["frames"]
    start_time, start_wall = time.perf_counter(), counters["wall_s"]
    a_tm1 = np.zeros(pool.num_envs, np.int64)      # each env's last action (network index)
    obs_tensor = pool.batch_tensors.obs            # zero-copy view of the rows recv() returns

    try:
        pool.async_reset()
        out = pool.recv()
        replay.add_step(out, a_tm1[out.env_id])    # episode starts: the actions are ignored
        while counters["frames"] < cfg.frames:
            env_ids = out.env_id.copy()
            n = len(env_ids)

            # Act: epsilon-greedy over the minimal action set; skip the forward pass when all explore.
            epsilon = epsilon_at(counters["frames"], cfg.epsilon_start, cfg.epsilon_end, cfg.epsilon_decay_frames)
            a_t = rng.integers(len(legal_actions), size=n)
            greedy = rng.random(n) >= epsilon
            if greedy.any():
                with torch.no_grad(), autocast:
                    q_t = online(obs_tensor[:n].to(device, non_blocking=True))
                a_t = np.where(greedy, q_t.argmax(1).cpu().numpy(), a_t)
            pool.send(legal_actions[a_t], env_ids)
            a_tm1[env_ids] = a_t
            counters["agent_steps"] += n
            counters["frames"] = counters["agent_steps"] * cfg.frame_skip

            # Learn while the envs step.
            if (counters["agent_steps"] >= cfg.learning_starts
                    and replay.num_transitions() >= max(refill, cfg.batch_size)):
                counters["update_credit"] += n / cfg.update_every
                while counters["update_credit"] >= 1.0:
                    counters["update_credit"] -= 1.0
                    loss, q_mean = update()
                    losses.append(loss)
                    q_means.append(q_mean)

            # Test epoch, logs and checkpoint when due.
            if cfg.test_epoch_frames and counters["frames"] >= (counters["epochs"] + 1) * cfg.train_epoch_frames:
                last_test = test_epoch()
            if counters["frames"] >= next_log:
                now = time.perf_counter()
                fps = (counters["frames"] - log_frames) / max(now - log_time, 1e-9)
                loss_value = float(torch.stack(losses).mean()) if losses else math.nan
                q_value = float(torch.stack(q_means).mean()) if q_means else math.nan
                recent = float(np.mean(recent_returns)) if recent_returns else math.nan
                logger.row("progress", frames=counters["frames"], wall_s=start_wall + now - start_time, fps=fps,
                           epsilon=epsilon, loss=loss_value, q_mean=q_value, recent_return=recent,
                           updates=counters["updates"])
                logger.advance(counters["frames"] - log_frames, fps=fps, ret=recent, eps=epsilon)
                losses.clear()
                q_means.clear()
                log_time, log_frames = now, counters["frames"]
                next_log = counters["frames"] + cfg.log_every
            if counters["frames"] >= next_checkpoint:
                counters["wall_s"] = start_wall + time.perf_counter() - start_time
                checkpoint()
                next_checkpoint = counters["frames"] + cfg.checkpoint_every

            # Collect the step: store it, count finished episodes.
            out = pool.recv()
            replay.add_step(out, a_tm1[out.env_id])
            for row in np.flatnonzero(out.done):
                counters["episodes"] += 1
                recent_returns.append(float(out.episode_return[row]))
                logger.row("episodes", frames=counters["frames"], game=canonical_name(cfg.game),
                           **{"return": float(out.episode_return[row])}, length=int(out.episode_length[row]))

        counters["wall_s"] = start_wall + time.perf_counter() - start_time
        checkpoint()
    finally:
        logger.close()
        pool.close()
    return {**counters, "last_test": last_test, "checkpoint": str(ckpt_path),
            "recent_return": float(np.mean(recent_returns)) if recent_returns else math.nan}
