"""The common replay layout, as a benchmark peer: every transition stores its whole obs and next_obs stacks.

This is what e.g. Stable-Baselines3's ReplayBuffer does without optimize_memory_usage: 2 x 4 x 84 x 84 =
56,448 bytes per transition (28,224 for the obs-only variant that reads next_obs from the next row).
One env, vectorized numpy sampling; n-step returns are computed at sample time over consecutive rows.
"""

from __future__ import annotations

import numpy as np

FRAME = 84


class StackedReplay:
    def __init__(self, capacity: int, stack: int = 4, n_step: int = 1, gamma: float = 0.99):
        self.capacity, self.n_step, self.gamma = capacity, n_step, gamma
        self.obs = np.zeros((capacity, stack, FRAME, FRAME), dtype=np.uint8)
        self.next_obs = np.zeros((capacity, stack, FRAME, FRAME), dtype=np.uint8)
        self.action = np.zeros(capacity, dtype=np.int64)
        self.reward = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=bool)
        self.truncated = np.zeros(capacity, dtype=bool)
        self.index = np.zeros(capacity, dtype=np.int64)   # caller's id of the transition (for checks)
        self.pos, self.size = 0, 0

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.obs, self.next_obs, self.action, self.reward, self.terminated,
                                      self.truncated))

    def add(self, obs, action, reward, next_obs, terminated, truncated, index=0):
        """Store one 1-step transition; consecutive calls must be consecutive steps of one env."""
        p = self.pos
        self.obs[p], self.next_obs[p] = obs, next_obs
        self.action[p], self.reward[p] = action, reward
        self.terminated[p], self.truncated[p], self.index[p] = terminated, truncated, index
        self.pos = (p + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict:
        n = self.n_step
        oldest = self.pos if self.size == self.capacity else 0
        start = (oldest + rng.integers(0, self.size - n + 1, batch_size)) % self.capacity
        rows = (start[:, None] + np.arange(n)) % self.capacity                  # [B, n]
        ended = self.terminated[rows] | self.truncated[rows]
        counted = np.concatenate([np.ones((batch_size, 1), bool),                # reward k counts if no
                                  np.cumprod(~ended[:, :-1], axis=1).astype(bool)], axis=1)  # end before k
        steps = counted.sum(axis=1)
        last = rows[np.arange(batch_size), steps - 1]
        weights = self.gamma ** np.arange(n)
        return {"obs": self.obs[start], "action": self.action[start],
                "reward": (self.reward[rows] * weights * counted).sum(axis=1).astype(np.float32),
                "next_obs": self.next_obs[last],
                "discount": np.where(self.terminated[last], 0.0, self.gamma ** steps).astype(np.float32),
                "index": self.index[start]}
