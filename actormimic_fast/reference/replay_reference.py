"""Plain numpy replay with the semantics of actormimic_fast.ReplayMemory, written to be read.

Dopamine-style: one circular array per env, transitions rebuilt at sample time, rejection sampling,
an injected numpy Generator. Shared by tests (exact comparison with the C++ memory) and benchmarks.

Records and transitions (as in csrc/replay/env_ring.h):
  - add() stores per env the record t: (frame s_t, action a_{t-1}, reward r_t, terminated, truncated,
    life_loss, episode_start). Env e keeps its newest `env_capacity[e]` records: indices
    [written[e] - env_capacity[e], written[e]).
  - The stack of record t is frames t - stack + 1 .. t; frames before its episode's first are zero.
  - The transition from t: a_t is the action of record t + 1; the return walks k = 1..n_step over
    q = t + k: an episode start at q cuts it (k == 1: no transition; else it ends at q - 1 and
    bootstraps), r_q is added with weight gamma^(k-1), a termination (or a life loss when
    life_loss_terminal) ends it with discount 0, a truncation or k == n_step with discount gamma^k.
  - A transition is valid when the walk ends at a kept record, t itself does not end its episode,
    and every frame of t's stack is still kept.
"""

from __future__ import annotations

import numpy as np

FRAME = 84
FIELDS = ("obs", "action", "reward", "next_obs", "discount", "done", "game_id", "env_id", "index")


class ReplayReference:
    def __init__(self, capacity, env_game_ids, stack: int = 4, n_step: int = 1, gamma: float = 0.99,
                 life_loss_terminal: bool = False):
        self.env_game = np.asarray(env_game_ids, dtype=np.int64)
        self.num_envs = len(self.env_game)
        self.num_games = int(self.env_game.max()) + 1
        if np.isscalar(capacity):
            capacity = [capacity] * self.num_games
        self.stack, self.n_step = stack, n_step
        self.gamma = np.float32(gamma)
        self.life_loss_terminal = life_loss_terminal

        # A game's capacity is split evenly over its envs, the first envs taking the remainder.
        self.env_capacity = np.zeros(self.num_envs, dtype=np.int64)
        for g in range(self.num_games):
            envs = np.flatnonzero(self.env_game == g)
            for k, e in enumerate(envs):
                self.env_capacity[e] = capacity[g] // len(envs) + (k < capacity[g] % len(envs))

        slots = int(self.env_capacity.max())
        self.frames = np.zeros((self.num_envs, slots, FRAME, FRAME), dtype=np.uint8)
        self.action = np.zeros((self.num_envs, slots), dtype=np.int64)
        self.reward = np.zeros((self.num_envs, slots), dtype=np.float32)
        self.terminated = np.zeros((self.num_envs, slots), dtype=bool)
        self.truncated = np.zeros((self.num_envs, slots), dtype=bool)
        self.life_loss = np.zeros((self.num_envs, slots), dtype=bool)
        self.episode_start = np.zeros((self.num_envs, slots), dtype=bool)
        self.written = np.zeros(self.num_envs, dtype=np.int64)
        self._valid_cache = {}

    # -- storing -----------------------------------------------------------------------------------
    def add(self, env_ids, frames, actions, rewards, terminated, truncated, life_loss, episode_start):
        for i, e in enumerate(np.asarray(env_ids)):
            s = self.written[e] % self.env_capacity[e]
            self.frames[e, s] = frames[i]
            self.action[e, s] = actions[i]
            self.reward[e, s] = rewards[i]
            self.terminated[e, s] = terminated[i]
            self.truncated[e, s] = truncated[i]
            self.life_loss[e, s] = life_loss[i]
            self.episode_start[e, s] = episode_start[i]
            self.written[e] += 1
        self._valid_cache.clear()

    # -- the rules ---------------------------------------------------------------------------------
    def oldest(self, e: int) -> int:
        return max(0, int(self.written[e] - self.env_capacity[e]))

    def kept(self, e: int, t: int) -> bool:
        return self.oldest(e) <= t < self.written[e]

    def _slot(self, e: int, t: int) -> int:
        return t % int(self.env_capacity[e])

    def history_start(self, e: int, t: int) -> int | None:
        """Oldest real frame of the stack of record t; None when a frame it needs is no longer kept."""
        first = t
        while first > t - self.stack + 1 and not self.episode_start[e, self._slot(e, first)]:
            if first == self.oldest(e):
                return None
            first -= 1
        return first

    def walk(self, e: int, t: int) -> tuple[int, bool] | None:
        """(end, terminal) of the n-step return from record t, or None when t has no transition (yet)."""
        s = self._slot(e, t)
        if self.terminated[e, s] or self.truncated[e, s]:
            return None
        for k in range(1, self.n_step + 1):
            q = t + k
            if q >= self.written[e]:
                return None
            sq = self._slot(e, q)
            if self.episode_start[e, sq]:
                return None if k == 1 else (q - 1, False)
            if self.terminated[e, sq] or (self.life_loss_terminal and self.life_loss[e, sq]):
                return q, True
            if self.truncated[e, sq] or k == self.n_step:
                return q, False
        raise AssertionError("unreachable")

    def is_valid(self, e: int, t: int) -> bool:
        return self.kept(e, t) and self.walk(e, t) is not None and self.history_start(e, t) is not None

    def valid_indices(self, game: int) -> tuple[np.ndarray, np.ndarray]:
        key = ("valid", game)
        if key not in self._valid_cache:
            pairs = [(e, t) for e in np.flatnonzero(self.env_game == game)
                     for t in range(self.oldest(e), int(self.written[e])) if self.is_valid(e, t)]
            envs = np.array([p[0] for p in pairs], dtype=np.int32)
            times = np.array([p[1] for p in pairs], dtype=np.int64)
            self._valid_cache[key] = (envs, times)
        return self._valid_cache[key]

    def num_transitions(self, game: int) -> int:
        return len(self.valid_indices(game)[1])

    # -- reading -----------------------------------------------------------------------------------
    def gather(self, env_ids, indices, reward_clip: float | None = None) -> dict:
        """The transitions from records (env_ids[i], indices[i]) as numpy arrays (keys: FIELDS)."""
        env_ids = np.asarray(env_ids, dtype=np.int64)
        indices = np.asarray(indices, dtype=np.int64)
        n = len(env_ids)
        clip = np.float32(np.inf if reward_clip is None else reward_clip)
        obs_slots = np.zeros((n, self.stack), dtype=np.int64)
        next_slots = np.zeros((n, self.stack), dtype=np.int64)
        obs_real = np.zeros((n, self.stack), dtype=bool)   # False: a zero frame before the episode start
        next_real = np.zeros((n, self.stack), dtype=bool)
        out = {"action": np.zeros(n, np.int64), "reward": np.zeros(n, np.float32),
               "discount": np.zeros(n, np.float32), "done": np.zeros(n, bool),
               "game_id": self.env_game[env_ids], "env_id": env_ids, "index": indices}
        for i, (e, t) in enumerate(zip(env_ids, indices)):
            e, t = int(e), int(t)
            if not self.is_valid(e, t):
                raise IndexError(f"transition (env {e}, index {t}) cannot be sampled")
            end, terminal = self.walk(e, t)
            for stack_row, real, at in ((obs_slots, obs_real, t), (next_slots, next_real, end)):
                first = self.history_start(e, at)
                for k in range(self.stack):
                    position = at - (self.stack - 1 - k)
                    real[i, k] = position >= first
                    stack_row[i, k] = self._slot(e, max(position, first))
            ret, weight = np.float32(0), np.float32(1)
            for q in range(t + 1, end + 1):
                r = np.float32(min(max(self.reward[e, self._slot(e, q)], -clip), clip))
                ret = np.float32(ret + weight * r)
                weight = np.float32(weight * self.gamma)
            out["action"][i] = self.action[e, self._slot(e, t + 1)]
            out["reward"][i] = ret
            out["discount"][i] = 0 if terminal else weight
            out["done"][i] = terminal
        rows = env_ids[:, None]
        out["obs"] = self.frames[rows, obs_slots] * obs_real[:, :, None, None]
        out["next_obs"] = self.frames[rows, next_slots] * next_real[:, :, None, None]
        return out

    def sample(self, batch_size: int | None = None, per_game: int | None = None, games=None,
               rng: np.random.Generator | None = None, reward_clip: float | None = None) -> dict:
        """Uniform over valid transitions of `games` (batch_size rows) or per_game rows of each game."""
        rng = np.random.default_rng() if rng is None else rng
        games = list(range(self.num_games)) if games is None else list(games)
        for g in games:
            if self.num_transitions(g) == 0:
                raise ValueError(f"game {g} has no transitions to sample yet")
            if per_game is not None and per_game > self.num_transitions(g):
                raise ValueError(f"per_game = {per_game} is more than the transitions game {g} holds")
        if per_game is None and batch_size > sum(self.num_transitions(g) for g in games):
            raise ValueError(f"batch_size = {batch_size} is more than the transitions the games hold")
        groups = [games] * batch_size if per_game is None else [[g] for g in games for _ in range(per_game)]
        picks = [self._draw(group, rng) for group in groups]
        return self.gather([e for e, _ in picks], [t for _, t in picks], reward_clip)

    def _draw(self, games, rng) -> tuple[int, int]:
        """Rejection sampling: a uniform kept record of these games until one has a valid transition."""
        envs = [e for e in range(self.num_envs) if self.env_game[e] in games]
        kept = np.cumsum([self.written[e] - self.oldest(e) for e in envs])
        while True:
            u = int(rng.integers(kept[-1]))
            j = int(np.searchsorted(kept, u, side="right"))
            e = envs[j]
            t = self.oldest(e) + u - (int(kept[j - 1]) if j else 0)
            if self.is_valid(e, t):
                return e, t
