"""A CleanRL-style DQN loop (dqn_atari.py, written plainly), the benchmark peer of agents/dqn.py.

What people run today: gymnasium's AsyncVectorEnv of the reference Atari wrappers (one subprocess per env,
observations pickled through pipes), a numpy replay that stores obs and next_obs stacks per transition
(Stable-Baselines3's layout), eager PyTorch, everything in one Python thread, one step after another.
Same network, optimiser and hyperparameters as the expert trainer: the Nature DQN over the minimal action
set, DeepMind's RMSProp, Huber loss summed over the minibatch, rewards clipped to [-1, 1], a lost life ends
the return for bootstrapping, one update per 4 agent steps (summed over envs), target copies every
`target_update` updates, linear epsilon decay over emulator frames.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
import torch.nn.functional as F

from ..models.networks import build_network
from ..models.optimizers import DeepMindRMSprop
from .atari_reference import make_reference_env, make_reference_envs


class NumpyReplay:
    """obs, next_obs, action, reward, done rows in preallocated numpy arrays (ring buffer)."""

    def __init__(self, capacity: int, stack: int = 4):
        self.obs = np.zeros((capacity, stack, 84, 84), np.uint8)
        self.next_obs = np.zeros((capacity, stack, 84, 84), np.uint8)
        self.action = np.zeros(capacity, np.int64)
        self.reward = np.zeros(capacity, np.float32)
        self.done = np.zeros(capacity, np.float32)
        self.capacity, self.pos, self.size = capacity, 0, 0

    def add(self, obs, next_obs, action, reward, done):
        for i in range(len(obs)):
            p = self.pos
            self.obs[p], self.next_obs[p], self.action[p] = obs[i], next_obs[i], action[i]
            self.reward[p], self.done[p] = reward[i], done[i]
            self.pos, self.size = (p + 1) % self.capacity, min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator):
        idx = rng.integers(0, self.size, batch_size)
        return (torch.from_numpy(self.obs[idx]), torch.from_numpy(self.action[idx]),
                torch.from_numpy(self.reward[idx]), torch.from_numpy(self.next_obs[idx]),
                torch.from_numpy(self.done[idx]))


def cleanrl_update(q_network, target_network, optimizer, batch, gamma: float, device: str = "cpu") -> torch.Tensor:
    """One eager gradient step on (s, a, r, s_next, done): Huber loss summed over the batch."""
    s, a, r, s_next, done = (t.to(device) for t in batch)
    with torch.no_grad():
        target = r + gamma * target_network(s_next).max(1).values * (1 - done)
    q = q_network(s).gather(1, a.unsqueeze(1)).squeeze(1)
    loss = F.huber_loss(q, target, reduction="sum")
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss


def updates_only(num_actions: int = 6, batch_size: int = 32, device: str = "cpu", seed: int = 0):
    """(update, q_network): a callable making one gradient step of the CleanRL-style update on a fixed
    random uint8 minibatch (no envs, no replay), and the network it trains, warmed up (allocator, oneDNN)."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    q_network = build_network("nature", num_actions).to(device)
    target_network = copy.deepcopy(q_network)
    optimizer = DeepMindRMSprop(q_network.parameters(), lr=2.5e-4)
    batch = (torch.from_numpy(rng.integers(0, 256, (batch_size, 4, 84, 84), dtype=np.uint8)),
             torch.from_numpy(rng.integers(0, num_actions, batch_size)),
             torch.from_numpy(rng.random(batch_size, dtype=np.float32)),
             torch.from_numpy(rng.integers(0, 256, (batch_size, 4, 84, 84), dtype=np.uint8)),
             torch.zeros(batch_size))

    def update() -> torch.Tensor:
        return cleanrl_update(q_network, target_network, optimizer, batch, 0.99, device)

    update()
    if device != "cpu":
        torch.cuda.synchronize()
    return update, q_network


def time_updates_only(updates: int, num_actions: int = 6, batch_size: int = 32, device: str = "cpu",
                      seed: int = 0) -> float:
    """Seconds that `updates` gradient steps take with no envs and no replay (random uint8 batches).

    The floor of any DQN loop's learning phase at the faithful update ratio: a trainer can hide env
    stepping behind the update, never the update itself.
    """
    update, _ = updates_only(num_actions, batch_size, device, seed)
    start = time.perf_counter()
    for _ in range(updates):
        update()
    if device != "cpu":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def minimal_actions(game: str) -> np.ndarray:
    env = make_reference_env(game)
    legal = np.array([int(a.value) for a in env.unwrapped.ale.getMinimalActionSet()], np.int64)
    env.close()
    return legal


def train_cleanrl_dqn(game: str = "pong", frames: int = 20_000, num_envs: int = 1, seed: int = 0,
                      replay_capacity: int = 10_000, learning_starts: int = 1_000, batch_size: int = 32,
                      gamma: float = 0.99, lr: float = 2.5e-4, target_update: int = 10_000, update_every: int = 4,
                      epsilon_start: float = 1.0, epsilon_end: float = 0.1, epsilon_decay_frames: int = 1_000_000,
                      frame_skip: int = 4, device: str = "cpu", timed_from_frame: int = 0) -> dict:
    """Train for `frames` emulator frames; returns counters, wall time and ``steady_fps``: the frames/s from
    emulator frame `timed_from_frame` on (start-up, the reset and warm-up before it are not timed)."""
    legal = minimal_actions(game)
    envs = make_reference_envs(game, num_envs, frame_skip=frame_skip)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    q_network = build_network("nature", len(legal)).to(device)
    target_network = copy.deepcopy(q_network)
    optimizer = DeepMindRMSprop(q_network.parameters(), lr=lr)
    replay = NumpyReplay(replay_capacity)

    start = time.perf_counter()
    obs, infos = envs.reset(seed=seed)
    lives = infos["lives"].copy()
    agent_steps = updates = episodes = 0
    credit = 0.0
    timed_start, timed_steps = None, 0
    while agent_steps * frame_skip < frames:
        if timed_start is None and agent_steps * frame_skip >= timed_from_frame:
            timed_start, timed_steps = time.perf_counter(), agent_steps
        fraction = min(1.0, agent_steps * frame_skip / epsilon_decay_frames)
        epsilon = epsilon_start + fraction * (epsilon_end - epsilon_start)
        if rng.random() < epsilon:
            actions = rng.integers(len(legal), size=num_envs)
        else:
            with torch.no_grad():
                actions = q_network(torch.as_tensor(obs, device=device)).argmax(1).cpu().numpy()
        next_obs, rewards, terminations, truncations, infos = envs.step(legal[actions])
        life_lost = infos["lives"] < lives
        lives = infos["lives"].copy()
        real_next_obs = next_obs.copy()
        for i in np.flatnonzero(terminations | truncations):
            real_next_obs[i] = infos["final_obs"][i]
            episodes += 1
        replay.add(obs, real_next_obs, actions, np.clip(rewards, -1, 1), terminations | life_lost)
        obs = next_obs
        agent_steps += num_envs

        if agent_steps >= learning_starts:
            credit += num_envs / update_every
            while credit >= 1.0:
                credit -= 1.0
                batch = replay.sample(batch_size, rng)
                loss = cleanrl_update(q_network, target_network, optimizer, batch, gamma, device)
                updates += 1
                if updates % target_update == 0:
                    target_network.load_state_dict(q_network.state_dict())
    end = time.perf_counter()
    envs.close()
    steady = (agent_steps - timed_steps) * frame_skip / (end - timed_start) if timed_start is not None else float("nan")
    return {"frames": agent_steps * frame_skip, "agent_steps": agent_steps, "updates": updates,
            "episodes": episodes, "wall_s": end - start, "steady_fps": steady,
            "loss": loss.item() if updates else float("nan")}
