"""The rollout of an on-policy Q-learner (PQN): what every env saw, did and got over the last T agent steps.

    rollout = RolloutBuffer(num_envs=64, rows=T + 1, ...)
    rollout.add_act(obs, a_t, q_max_t)       # the act step: s_t, the action and max_a Q(s_t, a), every env
    rollout.add_step(out, a_t)               # the pool's answer: r_{t+1}, episode and life flags (RunLoop)
    batch = rollout.take()                   # the complete steps since the last take() (+ the bootstrap row)

Contract (one thread: the run loop's, lockstep): act and step calls alternate, act first; ``take()`` is
called between an act and its step (when the run loop runs an update), returns the steps 0 .. t-1 whose
outcome is known and the last act's row t (its max Q bootstraps step t-1), then keeps row t as the next
rollout's row 0. The first add_step after a reset (the pool's first observations) completes no row.

Row t is *valid* when the env really played a_t: after an episode ends the pool's next step ignores the
action and returns the new episode's first frame ("next-step" autoreset), so that row is kept out of the
loss (but its max Q still bootstraps a truncated episode's last step).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Rollout:
    """T steps of N envs (time first), and the bootstrap values after each."""

    obs: torch.Tensor            # uint8 [T, N, 4, 84, 84]: s_t
    action: torch.Tensor         # int64 [T, N]: a_t (a column of the env's network)
    reward: torch.Tensor         # float32 [T, N]: r_{t+1}, clipped
    cut: torch.Tensor            # bool [T, N]: no bootstrap after this step (the game ended or a life was lost)
    truncated: torch.Tensor      # bool [T, N]: the episode was cut by the frame cap after this step
    valid: torch.Tensor          # bool [T, N]: the env played a_t (not the ignored step after an episode end)
    q_next: torch.Tensor         # float32 [T, N]: max_a Q(s_{t+1}, a) from the act step on s_{t+1}

    @property
    def steps(self) -> int:
        return self.obs.shape[0]


class RolloutBuffer:
    def __init__(self, num_envs: int, rows: int, *, reward_clip: float | None, life_loss_terminal: bool,
                 obs_shape: tuple[int, ...] = (4, 84, 84)):
        if rows < 2:
            raise ValueError(f"rows must be >= 2 (one step and its bootstrap), got {rows}")
        self.num_envs, self.rows = num_envs, rows
        self.reward_clip, self.life_loss_terminal = reward_clip, life_loss_terminal
        self.obs = torch.zeros((rows, num_envs, *obs_shape), dtype=torch.uint8)
        self.action = torch.zeros((rows, num_envs), dtype=torch.int64)
        self.q_max = torch.zeros((rows, num_envs), dtype=torch.float32)
        self.valid = torch.zeros((rows, num_envs), dtype=torch.bool)
        self.reward = np.zeros((rows, num_envs), np.float32)
        self.cut = np.zeros((rows, num_envs), bool)
        self.truncated = np.zeros((rows, num_envs), bool)
        self.acted = 0          # rows whose act step is stored
        self.stepped = 0        # rows whose outcome is stored (acted - 1 or acted)
        self._ended = np.zeros(num_envs, bool)   # each env's last step ended its episode: its next action is ignored

    # -- the run loop's calls -------------------------------------------------------------------------
    def add_act(self, obs: torch.Tensor, action: np.ndarray, q_max: torch.Tensor) -> None:
        """The act step on s_t of every env (rows in env order)."""
        if self.acted != self.stepped:
            raise RuntimeError("RolloutBuffer.add_act: the previous act step has no add_step yet")
        if self.acted == self.rows:
            raise RuntimeError(f"RolloutBuffer: {self.rows} rows are full; take() the rollout first")
        t = self.acted
        self.obs[t].copy_(obs)
        self.action[t] = torch.from_numpy(np.asarray(action, np.int64))
        self.q_max[t] = q_max.float().cpu()
        self.valid[t] = torch.from_numpy(~self._ended)
        self.acted += 1

    def add_step(self, out, a_t: np.ndarray) -> None:
        """The pool's answer to the last act step (a PoolStep; rows in any order, by out.env_id)."""
        if self.stepped == self.acted:      # the pool's first observations: no act step before them
            self._ended[:] = False
            return
        t, env = self.stepped, np.asarray(out.env_id)
        reward = np.asarray(out.reward, np.float32)
        if self.reward_clip:
            reward = np.clip(reward, -self.reward_clip, self.reward_clip)
        cut = np.asarray(out.terminated) | (np.asarray(out.life_loss) & self.life_loss_terminal)
        self.reward[t, env] = reward
        self.cut[t, env] = cut
        self.truncated[t, env] = np.asarray(out.truncated) & ~cut
        self._ended[env] = np.asarray(out.terminated) | np.asarray(out.truncated)
        self.stepped += 1

    def num_transitions(self, game: int = 0) -> int:
        """Complete steps held (every env of every game has the same number)."""
        return max(0, self.acted - 1) * self.num_envs

    def take(self) -> Rollout:
        """The complete steps since the last take and their bootstrap values; keeps the last act's row."""
        t = self.acted - 1                  # row t: acted, outcome pending: the bootstrap row
        if t < 1 or self.stepped != t:
            raise RuntimeError(f"RolloutBuffer.take: needs an act step after at least one complete step "
                               f"(acted {self.acted}, stepped {self.stepped})")
        rollout = Rollout(obs=self.obs[:t].clone(), action=self.action[:t].clone(),
                          reward=torch.from_numpy(self.reward[:t].copy()), cut=torch.from_numpy(self.cut[:t].copy()),
                          truncated=torch.from_numpy(self.truncated[:t].copy()), valid=self.valid[:t].clone(),
                          q_next=self.q_max[1: t + 1].clone())
        for rows in (self.obs, self.action, self.q_max, self.valid):
            rows[0] = rows[t]
        self.acted, self.stepped = 1, 0
        return rollout

    # the Learner's interface: the rollout is the batch (no preallocated minibatch to fill)
    def empty_batch(self, rows: int, pin_memory: bool = False) -> None:
        return None


def q_lambda_returns(reward: torch.Tensor, cut: torch.Tensor, truncated: torch.Tensor, q_next: torch.Tensor, *,
                     gamma: float, lam: float) -> torch.Tensor:
    """Peng's Q(lambda) returns of a rollout, all [T, N], computed backwards from the last step:

        G_t = r_{t+1} + gamma * (1 - cut_t) * B_t
        B_t = max_a Q(s_{t+1}, a)                                   at the rollout's last step and after a
                                                                    truncation (s_{t+1} ends the episode)
        B_t = lam * G_{t+1} + (1 - lam) * max_a Q(s_{t+1}, a)       otherwise

    cut_t: the game ended or a life was lost at step t (no bootstrap; the return starts again at t + 1).
    """
    returns = torch.empty_like(reward)
    last = reward.shape[0] - 1
    for t in range(last, -1, -1):
        if t == last:
            bootstrap = q_next[t]
        else:
            blended = lam * returns[t + 1] + (1 - lam) * q_next[t]
            bootstrap = torch.where(truncated[t], q_next[t], blended)
        returns[t] = reward[t] + gamma * (~cut[t]).float() * bootstrap
    return returns
