"""Python face of the C++ replay memory (csrc/replay/replay_memory.h): each 84x84 frame stored once.

    pool = MultiGameEnvPool(["pong", "breakout"], envs_per_game=2)
    replay = ReplayMemory.for_pool(pool, capacity=100_000, n_step=3, gamma=0.99)
    out = pool.reset()
    replay.add_step(out, actions=np.zeros(pool.num_envs, np.int64))   # actions are ignored at a reset
    while training:
        out = pool.step(actions)
        replay.add_step(out, actions)        # = replay.add(out.env_id, out.obs[:, -1], actions, out.reward, ...)
        batch = replay.sample(per_game=8)    # Actor-Mimic: 8 transitions of every game, grouped by game

Record convention: each add() stores, per env, the record (s_t = the newest frame, a_{t-1} = the action
sent on the step that produced it, r_t and the flags that came with it, episode_start). A transition
(s_t, a_t, R, s_{t+k}, discount) joins consecutive records of one env; see ReplayMemory for the rules.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Sequence

import numpy as np
import torch

from . import _C
from .checks import check_int

FRAME_SIZE = 84
STATE_FORMAT = "actormimic_fast.ReplayMemory/1"


@dataclass(frozen=True)
class TransitionBatch:
    """A batch of transitions (s_t, a_t, R, s_{t+k}, discount), one row each; CPU tensors, pinnable."""

    obs: torch.Tensor       # uint8 [B, stack, 84, 84]: s_t, oldest frame first, zeros before its episode's start
    action: torch.Tensor    # int64 [B]: a_t
    reward: torch.Tensor    # float32 [B]: R = sum_{j<k} gamma^j r_{t+j+1} (each r clipped when reward_clip is set)
    next_obs: torch.Tensor  # uint8 [B, stack, 84, 84]: s_{t+k}, the state to bootstrap from
    discount: torch.Tensor  # float32 [B]: gamma^k, or 0 when the return ended at a termination
    done: torch.Tensor      # bool [B]: the return ended at a termination (discount == 0)
    game_id: torch.Tensor   # int64 [B]
    env_id: torch.Tensor    # int64 [B]
    index: torch.Tensor     # int64 [B]: position of s_t among env_id's records (0 = its first add)

    @property
    def batch_size(self) -> int:
        return self.obs.shape[0]

    def to(self, device, non_blocking: bool = False) -> "TransitionBatch":
        """Copy of every field on `device` (non_blocking pays off from pinned memory)."""
        return TransitionBatch(**{f.name: getattr(self, f.name).to(device, non_blocking=non_blocking)
                                  for f in fields(self)})



def _vector(name: str, values, n: int, kind: str, dtype) -> np.ndarray:
    """values as a contiguous 1-D array of dtype; kind 'int', 'real' or 'bool' says what dtypes are accepted."""
    arr = np.asarray(values)
    ok = {"int": arr.dtype != np.bool_ and np.issubdtype(arr.dtype, np.integer),
          "real": arr.dtype != np.bool_ and (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)),
          "bool": arr.dtype == np.bool_}[kind]
    if not ok:
        wanted = {"int": "an integer", "real": "a float or integer", "bool": "a bool"}[kind]
        raise TypeError(f"{name} must be {wanted} array, got dtype {arr.dtype}")
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
    return np.ascontiguousarray(arr, dtype=dtype)


class ReplayMemory:
    """Circular replay of many envs and games that stores each 84x84 frame once (about 7 KB per transition).

    Args:
        capacity: records kept per game (one int for every game, or one per game). Each env of a game gets
            an equal share in its own ring; the oldest records of a ring are dropped first.
        env_game_ids: game of each env (e.g. ``pool.game_ids``); env ids given to add() index it.
        stack: frames per observation (the pool's ``stack``).
        n_step: rewards per return (>= 1).
        gamma: discount of the return and of the bootstrap.
        life_loss_terminal: a life loss ends the return with discount 0 (for bootstrapping only: stacks
            and episodes go on across it).
        num_threads: threads that copy one sample() batch, the caller included (default min(4, cores)).
        seed: seeds sample() calls made without ``seed``; each call then gets the next seed in sequence.
        guard: extra slots per env ring that samplers never use, so a concurrent add() has to lap a ring by
            that many records during one copy before a draw is redone (see csrc/replay/env_ring.h).

    Rules (identical to actormimic_fast.reference.ReplayReference):
        - The stack of record t is its env's frames t - stack + 1 .. t, oldest first; frames before
          its episode's first frame are 0, as in the pool's own observations.
        - The transition from record t uses a_t = the action of record t + 1 and walks k = 1..n_step:
          reward r_{t+k} is added with weight gamma^(k-1); a terminated record (or a life loss under
          life_loss_terminal) ends it with discount 0; a truncated one ends it with discount gamma^k
          (bootstrap from the final frame); after n_step rewards the discount is gamma^n_step. A record
          that starts an episode without a done record before it (a second pool.reset()) cuts the walk:
          the return ends at the record before it, as a truncation. Terminated or truncated records
          have no outgoing transition; the transition must be complete and its stack history kept.

    Concurrency: one thread adds (add/state_dict/load_state_dict; a second concurrent writer gets
    RuntimeError); any number of threads may sample or gather at the same time, without locks. A returned
    transition is never torn: a row whose records the writer overwrote during the copy is redrawn.
    """

    def __init__(self, capacity: int | Sequence[int], env_game_ids, *, stack: int = 4, n_step: int = 1,
                 gamma: float = 0.99, life_loss_terminal: bool = False, num_threads: int | None = None,
                 seed: int = 0, guard: int = 8):
        ids = np.asarray(env_game_ids)
        if ids.ndim != 1 or ids.size == 0 or ids.dtype == np.bool_ or not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"env_game_ids must be a non-empty 1-D integer array, got {env_game_ids!r}")
        if ids.min() < 0:
            raise ValueError(f"env_game_ids must be >= 0, got {ids.min()}")
        num_games = int(ids.max()) + 1
        if isinstance(capacity, (int, np.integer)) and not isinstance(capacity, bool):
            capacities = [check_int("capacity", capacity, 1)] * num_games
        else:
            capacities = [check_int(f"capacity[{g}]", c, 1) for g, c in enumerate(capacity)]
            if len(capacities) != num_games:
                raise ValueError(f"capacity must have one entry per game ({num_games}), got {len(capacities)}")
        stack = check_int("stack", stack, 1)
        n_step = check_int("n_step", n_step, 1)
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float, np.floating)) or not 0 <= gamma <= 1:
            raise ValueError(f"gamma must be a number in [0, 1], got {gamma!r}")
        if num_threads is None:
            num_threads = min(4, os.cpu_count() or 1)
        num_threads = check_int("num_threads", num_threads, 1)
        seed = check_int("seed", seed, 0, 2**64 - 1)
        guard = check_int("guard", guard, 0)
        self._m = _C.ReplayMemory([int(g) for g in ids], capacities, stack, n_step, float(gamma),
                                  bool(life_loss_terminal), guard, num_threads, seed)
        self._num_envs = int(ids.size)

    @classmethod
    def for_pool(cls, pool, capacity: int | Sequence[int], **kwargs) -> "ReplayMemory":
        """A memory for the envs and games of a MultiGameEnvPool (its env ids, game ids and stack)."""
        pool_stack = pool.stack
        if kwargs.setdefault("stack", pool_stack) != pool_stack:
            raise ValueError(f"stack={kwargs['stack']} differs from the pool's stack {pool_stack}")
        return cls(capacity, pool.game_ids, **kwargs)

    # -- writing -----------------------------------------------------------------------------------
    def add(self, env_ids, frames, actions, rewards, terminated, truncated, life_loss, episode_start) -> None:
        """Store one record per env of a pool step (see the class docstring for the convention).

        frames: uint8 [n, 84, 84], read in place when each frame is contiguous (a pool's obs[:, -1] is);
        actions: the actions sent on the step that produced the frames (ignored where episode_start).
        """
        ids = self._env_ids(env_ids)
        n = ids.shape[0]
        if not isinstance(frames, np.ndarray):
            frames = np.asarray(frames)
        if frames.dtype != np.uint8:
            raise TypeError(f"frames must have dtype uint8, got {frames.dtype}")
        if frames.shape != (n, FRAME_SIZE, FRAME_SIZE):
            raise ValueError(f"frames must have shape ({n}, 84, 84), got {frames.shape}")
        if n and frames.strides[1:] != (FRAME_SIZE, 1):
            frames = np.ascontiguousarray(frames)
        self._m.add(ids.astype(np.int32), frames, _vector("actions", actions, n, "int", np.int64),
                    _vector("rewards", rewards, n, "real", np.float32),
                    _vector("terminated", terminated, n, "bool", np.bool_),
                    _vector("truncated", truncated, n, "bool", np.bool_),
                    _vector("life_loss", life_loss, n, "bool", np.bool_),
                    _vector("episode_start", episode_start, n, "bool", np.bool_))

    def add_step(self, step, actions) -> None:
        """add() for a PoolStep: actions[i] is the action sent for step.env_id[i] (its newest frame)."""
        self.add(step.env_id, step.obs[:, -1], actions, step.reward, step.terminated, step.truncated,
                 step.life_loss, step.episode_start)

    # -- reading -----------------------------------------------------------------------------------
    def empty_batch(self, batch_size: int, pin_memory: bool = False) -> TransitionBatch:
        """Preallocated output for sample(out=...) / gather(out=...), optionally in pinned memory."""
        batch_size = check_int("batch_size", batch_size, 1)
        if pin_memory and not torch.cuda.is_available():
            raise ValueError("pin_memory=True needs a CUDA device, and torch.cuda.is_available() is False")
        return self._allocate(batch_size, pin_memory)

    def _allocate(self, rows: int, pin_memory: bool = False) -> TransitionBatch:
        frames = (rows, self.stack, FRAME_SIZE, FRAME_SIZE)

        def empty(shape, dtype):
            return torch.empty(shape, dtype=dtype, pin_memory=pin_memory)

        return TransitionBatch(obs=empty(frames, torch.uint8), action=empty(rows, torch.int64),
                               reward=empty(rows, torch.float32), next_obs=empty(frames, torch.uint8),
                               discount=empty(rows, torch.float32), done=empty(rows, torch.bool),
                               game_id=empty(rows, torch.int64), env_id=empty(rows, torch.int64),
                               index=empty(rows, torch.int64))

    def _games(self, games) -> list[int]:
        if games is None:
            return list(range(self.num_games))
        if isinstance(games, (int, np.integer)) and not isinstance(games, bool):
            games = [games]
        out = [check_int("games[i]", g, 0) for g in games]
        if not out:
            raise ValueError("games must name at least one game, got []")
        for g in out:
            if g >= self.num_games:
                raise IndexError(f"games: game {g} is out of range [0, {self.num_games})")
        return out

    def _out(self, out: TransitionBatch | None, rows: int) -> TransitionBatch:
        if out is None:
            return self._allocate(rows)
        if not isinstance(out, TransitionBatch):
            raise TypeError(f"out must be a TransitionBatch (see empty_batch), got {type(out).__name__}")
        if out.batch_size != rows:
            raise ValueError(f"out holds {out.batch_size} rows, this call writes {rows}")
        return out

    @staticmethod
    def _clip(reward_clip) -> float | None:
        if reward_clip is None:
            return None
        if isinstance(reward_clip, bool) or not isinstance(reward_clip, (int, float, np.floating)) or not reward_clip > 0:
            raise ValueError(f"reward_clip must be None or a number > 0, got {reward_clip!r}")
        return float(reward_clip)

    def sample(self, batch_size: int | None = None, *, per_game: int | None = None, games=None,
               seed: int | None = None, reward_clip: float | None = None,
               out: TransitionBatch | None = None) -> TransitionBatch:
        """Draw transitions with replacement, uniformly over the valid transitions of `games` (default all).

        batch_size: that many rows, uniform over all valid transitions of the requested games; or
        per_game: that many rows of each requested game, grouped by game in the order of `games`
            (Actor-Mimic's "8 per game").
        seed: makes the draw reproducible (same memory content -> same rows, whatever num_threads); without
            it each call takes the memory's next seed. reward_clip clips each reward before discounting.
        out: a TransitionBatch from empty_batch() to write into (else a new one is allocated).
        Raises ValueError when a requested game has no transition yet or fewer than asked for.
        """
        if (batch_size is None) == (per_game is None):
            raise ValueError(f"give exactly one of batch_size and per_game, got batch_size={batch_size!r}, "
                             f"per_game={per_game!r}")
        game_list = self._games(games)
        if per_game is not None:
            per_game = check_int("per_game", per_game, 1)
            rows, batch_size = per_game * len(game_list), 0
        else:
            rows = batch_size = check_int("batch_size", batch_size, 1)
            per_game = 0
        if seed is not None:
            seed = check_int("seed", seed, 0, 2**64 - 1)
        clip = self._clip(reward_clip)
        out = self._out(out, rows)
        self._m.sample_into(game_list, per_game, batch_size, seed, clip, out.obs, out.next_obs, out.action,
                            out.reward, out.discount, out.done, out.game_id, out.env_id, out.index)
        return out

    def _env_ids(self, env_ids) -> np.ndarray:
        """env_ids as int64 [n]; ValueError for a wrong shape or type, IndexError for an unknown env."""
        ids = np.asarray(env_ids)
        if ids.ndim != 1:
            raise ValueError(f"env_ids must be 1-D, got shape {ids.shape}")
        ids = _vector("env_ids", ids, ids.shape[0], "int", np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= self._num_envs):
            bad = ids[(ids < 0) | (ids >= self._num_envs)][0]
            raise IndexError(f"env_ids: env id {bad} is out of range [0, {self._num_envs})")
        return ids

    def gather(self, env_ids, indices, *, reward_clip: float | None = None,
               out: TransitionBatch | None = None) -> TransitionBatch:
        """The transitions from records (env_ids[i], indices[i]); IndexError when one cannot be sampled."""
        ids = self._env_ids(env_ids)
        n = ids.shape[0]
        idx = _vector("indices", indices, n, "int", np.int64)
        out = self._out(out, n)
        self._m.gather_into(ids.astype(np.int32), idx, self._clip(reward_clip), out.obs, out.next_obs, out.action,
                            out.reward, out.discount, out.done, out.game_id, out.env_id, out.index)
        return out

    def valid_indices(self, game: int) -> tuple[np.ndarray, np.ndarray]:
        """(env_ids, indices) of every transition of `game` that sample() can return now (a full scan)."""
        return self._m.valid_indices(self._games(game)[0])

    def num_transitions(self, game: int | None = None) -> int:
        """Transitions sample() can return now, of one game or (None) of all games."""
        return sum(self._m.num_transitions(g) for g in self._games(game))

    def num_records(self, game: int | None = None) -> int:
        """Records kept now (at most the capacity), of one game or (None) of all games."""
        return sum(self._m.num_records(g) for g in self._games(game))

    def env_written(self, env: int) -> int:
        """Records env has added since creation: the index its next record gets."""
        return self._m.env_written(check_int("env", env, 0))

    def __len__(self) -> int:
        return self.num_transitions()

    # -- sizes and settings ------------------------------------------------------------------------
    @property
    def nbytes(self) -> int:
        """Bytes allocated (frames, actions, rewards, flags of every slot, guard slots included); pages
        are only touched as the memory fills."""
        return self._m.nbytes

    @property
    def capacity(self) -> tuple[int, ...]:
        return tuple(self._m.capacity_per_game)

    @property
    def bytes_per_transition(self) -> float:
        return self.nbytes / sum(self.capacity)

    @property
    def env_game_ids(self) -> np.ndarray:
        return np.asarray(self._m.env_game_ids, dtype=np.int32)

    num_envs = property(lambda self: self._m.num_envs)
    num_games = property(lambda self: self._m.num_games)
    num_threads = property(lambda self: self._m.num_threads)
    stack = property(lambda self: self._m.stack)
    n_step = property(lambda self: self._m.n_step)
    gamma = property(lambda self: self._m.gamma)
    life_loss_terminal = property(lambda self: self._m.life_loss_terminal)
    guard = property(lambda self: self._m.guard)

    @property
    def overwrite_redraws(self) -> int:
        """Draws redone because add() overwrote their records while they were being copied."""
        return self._m.overwrite_redraws

    # -- checkpoints -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Every kept record (tensors, torch.save-able; about 7 KB per record) and the seed counter.

        A writer-side call: it must not overlap add() (RuntimeError if it does); samplers may run.
        """
        state = self._m.export_state()
        state.update(format=STATE_FORMAT, env_game_ids=torch.from_numpy(self.env_game_ids.copy()),
                     capacity=torch.tensor(self.capacity, dtype=torch.int64), stack=self.stack)
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore a state_dict() of a memory with the same envs, games, capacities and stack.

        n_step, gamma and life_loss_terminal may differ: transitions are rebuilt from the records. No
        sample() may run meanwhile (RuntimeError on either side).
        """
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ValueError(f"state is not a ReplayMemory state_dict (format {STATE_FORMAT!r} expected)")
        saved_ids = np.asarray(state["env_game_ids"])
        if not np.array_equal(saved_ids, self.env_game_ids):
            raise ValueError(f"state env_game_ids {saved_ids.tolist()} differ from this memory's "
                             f"{self.env_game_ids.tolist()}")
        saved_capacity = tuple(int(c) for c in state["capacity"])
        if saved_capacity != self.capacity:
            raise ValueError(f"state capacity {saved_capacity} differs from this memory's {self.capacity}")
        if int(state["stack"]) != self.stack:
            raise ValueError(f"state stack {int(state['stack'])} differs from this memory's {self.stack}")
        self._m.import_state([int(w) for w in state["env_written"]], state["frames"].contiguous(),
                             state["actions"].contiguous(), state["rewards"].contiguous(),
                             state["flags"].contiguous(), int(state["seed_calls"]))

    def __repr__(self) -> str:
        return (f"ReplayMemory(capacity={list(self.capacity)}, num_envs={self.num_envs}, stack={self.stack}, "
                f"n_step={self.n_step}, gamma={self.gamma:.4g}, life_loss_terminal={self.life_loss_terminal}, "
                f"transitions={len(self)}, nbytes={self.nbytes})")
