"""A CleanRL-style PQN loop (pqn_atari_envpool.py, written plainly), the benchmark and test peer of agents/pqn.py.

What people run today: gymnasium's AsyncVectorEnv of the reference Atari wrappers (one subprocess per env,
observations pickled through pipes), a [T, N] rollout in torch tensors, eager PyTorch in float32, everything
in one Python thread: T acting steps (a forward pass each), a backwards loop for the Q(lambda) targets, then
E epochs of M minibatches. Same network, optimiser and hyperparameters as the expert PQN trainer: the Nature
DQN with LayerNorms over the minimal action set, RAdam (lr 2.5e-4, eps 1e-8), squared TD error averaged over
the minibatch, gradient norm clipped to 10, gamma 0.99, lambda 0.65, epsilon 1 -> 0.01 over the first 10% of
the frames, rewards clipped to [-1, 1], a lost life cuts the bootstrap (the episode goes on). CleanRL's
published shape: 8 envs x 128 steps, 4 epochs x 4 minibatches.

How it differs from ours (agents/pqn.py on run/rollouts.py):
- a truncated episode is a done here (CleanRL's): no bootstrap; ours bootstraps from the final frame;
- the bootstrap after the rollout costs one more forward pass here; ours reuses the next act step's;
- same-step autoreset here, so a rollout has no ignored steps; the pool's next-step autoreset leaves one per
  episode end, which ours keeps out of the loss (RolloutBuffer's ``valid``);
- observations stay uint8 (CleanRL stores float32: 4x the memory, a slower peer);
- the learning rate anneals linearly to 0 as CleanRL's anneal_lr does, set at each rollout's start; ours is
  clocked by the frames of the rollout's last acting step (one rollout later: a 1/iterations difference).
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from ..models.networks import build_network
from ..models.optimizers import fast_optimizer_options
from .atari_reference import make_reference_envs
from .cleanrl_dqn import minimal_actions


def q_lambda_targets(rewards: torch.Tensor, dones_next: torch.Tensor, values_next: torch.Tensor, gamma: float,
                     lam: float) -> torch.Tensor:
    """Peng's Q(lambda) targets of a [T, N] rollout, CleanRL's backwards loop.

    rewards[t]: r_{t+1}; dones_next[t]: 1 when the episode ended or a life was lost at step t (s_{t+1} is no
    bootstrap); values_next[t]: max_a Q(s_{t+1}, a). The last step bootstraps from its next value alone, every
    other step from lam x the next step's target + (1 - lam) x its next value; a done cuts both.
    """
    returns = torch.zeros_like(rewards)
    last = rewards.shape[0] - 1
    for t in reversed(range(last + 1)):
        nonterminal = 1.0 - dones_next[t]
        if t == last:
            next_return = values_next[t]
        else:
            next_return = lam * returns[t + 1] + (1 - lam) * values_next[t]
        returns[t] = rewards[t] + gamma * next_return * nonterminal
    return returns


def pqn_minibatch_step(network, optimizer, obs: torch.Tensor, actions: torch.Tensor, returns: torch.Tensor,
                       max_grad_norm: float, amp: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """One gradient step: mean squared error of Q(s, a) to the targets, gradient norm clipped, optimiser step.
    amp: the forward pass under bfloat16 autocast (the loss in float32). Returns the loss and the gradient
    norm before clipping."""
    with torch.autocast(obs.device.type, dtype=torch.bfloat16, enabled=amp):
        q = network(obs)
    q_a = q.float().gather(1, actions.unsqueeze(1)).squeeze(1)
    loss = F.mse_loss(q_a, returns)
    optimizer.zero_grad()
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(network.parameters(), max_grad_norm)
    optimizer.step()
    return loss.detach(), grad_norm


def pqn_update(network, optimizer, obs: torch.Tensor, actions: torch.Tensor, returns: torch.Tensor, *,
               epochs: int, minibatches: int, generator: torch.Generator,
               max_grad_norm: float) -> torch.Tensor:
    """CleanRL's minibatch loop on a [T, N] rollout (obs [T, N, 4, 84, 84], actions and returns [T, N]),
    flattened time-major (row t * N + n): every epoch a new permutation of the rows, cut into consecutive
    minibatches of rows // minibatches. Returns each step's (loss, gradient norm), [epochs x minibatches, 2]."""
    b_obs, b_actions, b_returns = obs.flatten(0, 1), actions.flatten(), returns.flatten()
    rows = b_obs.shape[0]
    if rows % minibatches:
        raise ValueError(f"minibatches must divide the rollout's rows ({rows}), got {minibatches}")
    minibatch_size = rows // minibatches
    steps = []
    for _ in range(epochs):
        b_inds = torch.randperm(rows, generator=generator)
        for start in range(0, rows, minibatch_size):
            mb_inds = b_inds[start:start + minibatch_size]
            steps.append(torch.stack(pqn_minibatch_step(network, optimizer, b_obs[mb_inds], b_actions[mb_inds],
                                                        b_returns[mb_inds], max_grad_norm)))
    return torch.stack(steps)


def pqn_optimizer(network, lr: float = 2.5e-4) -> torch.optim.RAdam:
    """PQN's optimiser: RAdam, eps 1e-8 (torch's default, CleanRL's), in its fastest implementation here
    (multi-tensor: the peer gets its best configuration, as the trainer does)."""
    params = list(network.parameters())
    return torch.optim.RAdam(params, lr=lr, eps=1e-8, **fast_optimizer_options("radam", params))


def update_only(num_actions: int = 6, batch_size: int = 128, device: str = "cpu", amp: bool = False,
                seed: int = 0, max_grad_norm: float = 10.0):
    """(update, network): a callable making one minibatch step (forward, backward, clip, RAdam) of nature_ln
    on a fixed random uint8 minibatch (no envs, no rollout), warmed up (allocator, oneDNN). amp: the forward
    pass under bfloat16 autocast, the loss in float32."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    network = build_network("nature_ln", num_actions).to(device)
    optimizer = pqn_optimizer(network)
    obs = torch.from_numpy(rng.integers(0, 256, (batch_size, 4, 84, 84), dtype=np.uint8)).to(device)
    actions = torch.from_numpy(rng.integers(0, num_actions, batch_size)).to(device)
    returns = torch.from_numpy(rng.standard_normal(batch_size, dtype=np.float32)).to(device)

    def update() -> torch.Tensor:
        return pqn_minibatch_step(network, optimizer, obs, actions, returns, max_grad_norm, amp)[0]

    update()
    if obs.device.type == "cuda":
        torch.cuda.synchronize()
    return update, network


def train_cleanrl_pqn(game: str = "pong", frames: int = 40_960, num_envs: int = 8, num_steps: int = 128,
                      epochs: int = 4, minibatches: int = 4, seed: int = 0, gamma: float = 0.99,
                      q_lambda: float = 0.65, lr: float = 2.5e-4, max_grad_norm: float = 10.0,
                      epsilon_start: float = 1.0, epsilon_end: float = 0.01, exploration_fraction: float = 0.1,
                      frame_skip: int = 4, device: str = "cpu", timed_from_frame: int = 0,
                      anneal_lr: bool = True) -> dict:
    """Train for `frames` emulator frames (whole rollouts: frames // (num_envs x num_steps x frame_skip) of
    them); returns counters, wall time and ``steady_fps``: the frames/s from emulator frame `timed_from_frame`
    on (start-up, the reset and warm-up before it are not timed)."""
    legal = minimal_actions(game)
    envs = make_reference_envs(game, num_envs, frame_skip=frame_skip)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    q_network = build_network("nature_ln", len(legal)).to(device)
    optimizer = pqn_optimizer(q_network, lr)
    obs = torch.zeros((num_steps, num_envs, 4, 84, 84), dtype=torch.uint8, device=device)
    actions = torch.zeros((num_steps, num_envs), dtype=torch.int64, device=device)
    rewards = torch.zeros((num_steps, num_envs), device=device)
    dones_next = torch.zeros((num_steps, num_envs), device=device)
    values = torch.zeros((num_steps, num_envs), device=device)        # max_a Q(s_t, a)
    epsilon_decay_frames = exploration_fraction * frames
    iterations = frames // (num_envs * num_steps * frame_skip)

    start = time.perf_counter()
    next_obs, infos = envs.reset(seed=seed)
    lives = infos["lives"].copy()
    agent_steps = episodes = 0
    timed_start, timed_steps = None, 0
    log = torch.zeros(0, 2)                   # the last update's (loss, gradient norm) per step
    for iteration in range(iterations):
        if anneal_lr:
            optimizer.param_groups[0]["lr"] = (1.0 - iteration / iterations) * lr
        for step in range(num_steps):
            if timed_start is None and agent_steps * frame_skip >= timed_from_frame:
                timed_start, timed_steps = time.perf_counter(), agent_steps
            fraction = min(1.0, agent_steps * frame_skip / epsilon_decay_frames)
            epsilon = epsilon_start + fraction * (epsilon_end - epsilon_start)
            obs[step] = torch.as_tensor(next_obs, device=device)
            with torch.no_grad():
                values[step], greedy = q_network(obs[step]).max(1)   # every step: the values bootstrap step - 1
            explore = rng.random(num_envs) < epsilon
            action = np.where(explore, rng.integers(len(legal), size=num_envs), greedy.cpu().numpy())
            actions[step] = torch.as_tensor(action, device=device)
            next_obs, reward, terminations, truncations, infos = envs.step(legal[action])
            life_lost = infos["lives"] < lives        # same-step autoreset: a new episode's lives are never fewer
            lives = infos["lives"].copy()
            rewards[step] = torch.as_tensor(np.clip(reward, -1, 1), dtype=torch.float32, device=device)
            dones_next[step] = torch.as_tensor(terminations | truncations | life_lost, dtype=torch.float32,
                                               device=device)
            episodes += int((terminations | truncations).sum())
            agent_steps += num_envs

        with torch.no_grad():
            next_value = q_network(torch.as_tensor(next_obs, device=device)).max(1).values
            values_next = torch.cat([values[1:], next_value.unsqueeze(0)])
            returns = q_lambda_targets(rewards, dones_next, values_next, gamma, q_lambda)
        log = pqn_update(q_network, optimizer, obs, actions, returns, epochs=epochs, minibatches=minibatches,
                         generator=generator, max_grad_norm=max_grad_norm)
    if device != "cpu":
        torch.cuda.synchronize()
    end = time.perf_counter()
    envs.close()
    steady = (agent_steps - timed_steps) * frame_skip / (end - timed_start) if timed_start is not None else float("nan")
    return {"frames": agent_steps * frame_skip, "agent_steps": agent_steps, "updates": iterations,
            "gradient_steps": iterations * epochs * minibatches, "episodes": episodes, "wall_s": end - start,
            "steady_fps": steady, "loss": log[-1, 0].item() if iterations else float("nan")}
