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

from .. import _C
from .argument_checks import (INT32_MAX, UINT64_MAX, check_bool, check_index, check_int, check_real, host_array,
                              int_array)
from .pool import PoolStep

FRAME_SIZE = 84
STATE_FORMAT = "actormimic_fast.ReplayMemory/1"
# Upper bounds of the settings: each sizes a loop or an allocation per env ring or per sample() call.
MAX_STACK = 64                    # frames per observation (the pool's bound too)
MAX_N_STEP = 1000                 # rewards per return
MAX_GUARD = 2**20                 # extra slots per env ring
MAX_THREADS = 1024                # sampler threads
MAX_CAPACITY = 2**40              # records per game (7 KB each: far beyond any memory)
MAX_ENV_WRITTEN = 2**62           # records one env may have added (positions stay far from int64 overflow)
FLAG_BITS = 0x0F                  # terminated | truncated | life_loss | episode_start (csrc/replay/types.h)


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
    """values as a contiguous 1-D array of dtype; kind 'int', 'real' or 'bool' says what dtypes are accepted.
    Integers must fit in dtype (no wrap-around)."""
    if kind == "int":
        arr = int_array(name, values, dtype)
    else:
        arr = host_array(name, values)
        ok = {"real": arr.dtype != np.bool_ and (np.issubdtype(arr.dtype, np.floating) or
                                                 np.issubdtype(arr.dtype, np.integer)),
              "bool": arr.dtype == np.bool_}[kind]
        if not ok:
            wanted = {"real": "a float or integer", "bool": "a bool"}[kind]
            raise TypeError(f"{name} must be {wanted} array, got dtype {arr.dtype}")
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
    with np.errstate(over="ignore"):  # a real beyond float32 becomes inf, which add() then refuses by name
        return np.ascontiguousarray(arr, dtype=dtype)


def _state_tensor(state: dict, key: str, dtype: torch.dtype | None, shape: tuple) -> torch.Tensor:
    """state[key] as a CPU tensor of dtype (None: any integer dtype) and shape (None: any size), each mismatch
    named by its key."""
    if key not in state:
        raise ValueError(f"state is missing key {key!r} (a ReplayMemory state_dict has {_STATE_KEYS})")
    value = state[key]
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"state[{key!r}] must be a torch.Tensor, got {type(value).__name__}")
    if dtype is None and (value.dtype == torch.bool or value.dtype.is_floating_point or value.dtype.is_complex):
        raise TypeError(f"state[{key!r}] must have an integer dtype, got {value.dtype}")
    if dtype is not None and value.dtype != dtype:
        raise TypeError(f"state[{key!r}] must have dtype {dtype}, got {value.dtype}")
    if value.device.type != "cpu":
        raise ValueError(f"state[{key!r}] must be on the CPU, got device {value.device}")
    if value.dim() != len(shape) or any(want is not None and got != want for got, want in zip(value.shape, shape)):
        want = "[" + ", ".join("N" if d is None else str(d) for d in shape) + "]"
        raise ValueError(f"state[{key!r}] must have shape {want}, got {list(value.shape)}")
    return value


_STATE_KEYS = ("format", "env_game_ids", "capacity", "stack", "env_written", "frames", "actions", "rewards", "flags",
               "seed_calls")


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
        ids = host_array("env_game_ids", env_game_ids)
        if ids.ndim != 1 or ids.size == 0 or ids.dtype == np.bool_ or not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"env_game_ids must be a non-empty 1-D integer array, got {env_game_ids!r}")
        if ids.size > INT32_MAX:
            raise ValueError(f"env_game_ids names {ids.size} envs, more than {INT32_MAX}")
        if ids.min() < 0:
            raise ValueError(f"env_game_ids must be >= 0, got {ids.min()}")
        num_games = int(ids.max()) + 1
        missing = np.setdiff1d(np.arange(min(num_games, ids.size + 1)), ids)
        if num_games > ids.size or missing.size:
            game = int(missing[0]) if missing.size else ids.size
            raise ValueError(f"env_game_ids must number the games 0..G-1: game {game} has no env (the largest game "
                             f"id is {num_games - 1})")
        if isinstance(capacity, np.ndarray) and capacity.ndim == 0:
            capacity = capacity.item()
        if isinstance(capacity, (int, np.integer)) and not isinstance(capacity, bool):
            capacities = [check_int("capacity", capacity, 1, MAX_CAPACITY)] * num_games
        elif isinstance(capacity, (str, bytes)) or not isinstance(capacity, (Sequence, np.ndarray)):
            raise TypeError(f"capacity must be an int or a sequence of ints (one per game), got {capacity!r} of "
                            f"type {type(capacity).__name__}")
        else:
            capacities = [check_int(f"capacity[{g}]", c, 1, MAX_CAPACITY) for g, c in enumerate(capacity)]
            if len(capacities) != num_games:
                raise ValueError(f"capacity must have one entry per game ({num_games}), got {len(capacities)}")
        stack = check_int("stack", stack, 1, MAX_STACK)
        n_step = check_int("n_step", n_step, 1, MAX_N_STEP)
        gamma = check_real("gamma", gamma)
        if not 0 <= gamma <= 1:
            raise ValueError(f"gamma must be a number in [0, 1], got {gamma!r}")
        if num_threads is None:
            num_threads = min(4, os.cpu_count() or 1)
        num_threads = check_int("num_threads", num_threads, 1, MAX_THREADS)
        seed = check_int("seed", seed, 0, UINT64_MAX)
        guard = check_int("guard", guard, 0, MAX_GUARD)
        life_loss_terminal = check_bool("life_loss_terminal", life_loss_terminal)
        try:
            self._m = _C.ReplayMemory([int(g) for g in ids], capacities, stack, n_step, gamma, life_loss_terminal,
                                      guard, num_threads, seed)
        except MemoryError:
            frames = (sum(capacities) + guard * ids.size) * FRAME_SIZE * FRAME_SIZE
            raise MemoryError(f"capacity {capacity!r}: could not allocate the {frames / 2**30:.3g} GiB of frames "
                              f"it needs") from None
        self._num_envs = int(ids.size)

    @classmethod
    def for_pool(cls, pool, capacity: int | Sequence[int], **kwargs) -> "ReplayMemory":
        """A memory for the envs and games of a MultiGameEnvPool (its env ids, game ids and stack)."""
        if not hasattr(pool, "game_ids") or not hasattr(pool, "stack"):
            raise TypeError(f"pool must be a MultiGameEnvPool, got {type(pool).__name__}")
        pool_stack = pool.stack
        if kwargs.setdefault("stack", pool_stack) != pool_stack:
            raise ValueError(f"stack={kwargs['stack']} differs from the pool's stack {pool_stack}")
        return cls(capacity, pool.game_ids, **kwargs)

    # -- writing -----------------------------------------------------------------------------------
    def add(self, env_ids, frames, actions, rewards, terminated, truncated, life_loss, episode_start) -> None:
        """Store one record per env of a pool step (see the class docstring for the convention).

        frames: uint8 [n, 84, 84], read in place when each frame is contiguous (a pool's obs[:, -1] is);
        actions: the actions sent on the step that produced the frames (ignored where episode_start), in [0, 2^31);
        rewards: finite numbers (stored as float32): a NaN or infinite reward raises ValueError naming the env
        and the value, before anything is stored (reward_clip at sample time could not clean it: NaN stays NaN).
        Host arrays only (numpy or CPU tensors); nothing is stored unless every argument is valid.
        """
        ids = self._env_ids(env_ids)
        n = ids.shape[0]
        frames = host_array("frames", frames)
        if frames.dtype != np.uint8:
            raise TypeError(f"frames must have dtype uint8, got {frames.dtype}")
        if frames.shape != (n, FRAME_SIZE, FRAME_SIZE):
            raise ValueError(f"frames must have shape ({n}, 84, 84), got {frames.shape}")
        if n and frames.strides[1:] != (FRAME_SIZE, 1):
            frames = np.ascontiguousarray(frames)
        actions = _vector("actions", actions, n, "int", np.int64)
        raw_rewards = host_array("rewards", rewards)
        rewards = _vector("rewards", raw_rewards, n, "real", np.float32)
        if not np.isfinite(rewards).all():
            i = int(np.flatnonzero(~np.isfinite(rewards))[0])
            raise ValueError(f"rewards[{i}] = {raw_rewards[i].item()!r} for env {ids[i]} is not finite (in float32)")
        self._m.add(ids.astype(np.int32), frames, actions, rewards,
                    _vector("terminated", terminated, n, "bool", np.bool_),
                    _vector("truncated", truncated, n, "bool", np.bool_),
                    _vector("life_loss", life_loss, n, "bool", np.bool_),
                    _vector("episode_start", episode_start, n, "bool", np.bool_))

    def add_step(self, step, actions) -> None:
        """add() for a PoolStep: actions[i] is the action sent for step.env_id[i] (its newest frame).

        A pool's own step (numpy rows of the pool's dtypes) goes straight to C++, which checks env ids,
        actions and rewards itself: a training loop adds every step, and add()'s conversions would cost
        more than the copy of the frames. TypeError unless ``step`` is a PoolStep.
        """
        if not isinstance(step, PoolStep):
            raise TypeError(f"add_step: step must be a pool step result (a PoolStep from MultiGameEnvPool.reset, "
                            f"step or recv), got {type(step).__name__}; use add() for separate arrays")
        if isinstance(actions, np.ndarray) and actions.dtype == np.int64 \
                and actions.shape == step.env_id.shape and step.env_id.dtype == np.int32:
            self._m.add(step.env_id, step.obs[:, -1], actions, step.reward, step.terminated, step.truncated,
                        step.life_loss, step.episode_start)
            return
        self.add(step.env_id, step.obs[:, -1], actions, step.reward, step.terminated, step.truncated,
                 step.life_loss, step.episode_start)

    # -- reading -----------------------------------------------------------------------------------
    def empty_batch(self, batch_size: int, pin_memory: bool = False) -> TransitionBatch:
        """Preallocated output for sample(out=...) / gather(out=...), optionally in pinned memory."""
        batch_size = check_int("batch_size", batch_size, 1)
        if check_bool("pin_memory", pin_memory) and not torch.cuda.is_available():
            raise ValueError("pin_memory=True needs a CUDA device, and torch.cuda.is_available() is False")
        try:
            return self._allocate(batch_size, pin_memory)
        except RuntimeError as error:  # torch's allocator failure, made to name the argument
            frames = 2 * batch_size * self.stack * FRAME_SIZE * FRAME_SIZE
            raise MemoryError(f"empty_batch: batch_size {batch_size} needs {frames / 2**30:.3g} GiB of frames, which "
                              f"could not be allocated") from error

    def _allocate(self, rows: int, pin_memory: bool = False) -> TransitionBatch:
        frames = (rows, self.stack, FRAME_SIZE, FRAME_SIZE)

        def empty(shape, dtype):
            return torch.empty(shape, dtype=dtype, pin_memory=pin_memory)

        return TransitionBatch(obs=empty(frames, torch.uint8), action=empty(rows, torch.int64),
                               reward=empty(rows, torch.float32), next_obs=empty(frames, torch.uint8),
                               discount=empty(rows, torch.float32), done=empty(rows, torch.bool),
                               game_id=empty(rows, torch.int64), env_id=empty(rows, torch.int64),
                               index=empty(rows, torch.int64))

    def _games(self, games, name: str = "games") -> list[int]:
        """games (None: all, one index, or a sequence of indices) as a list of game indices."""
        if games is None:
            return list(range(self.num_games))
        if isinstance(games, (int, np.integer)) and not isinstance(games, bool):
            return [check_index(name, games, self.num_games)]
        if isinstance(games, (str, bytes)) or not isinstance(games, (Sequence, np.ndarray)):
            raise TypeError(f"{name} must be None, a game index or a sequence of game indices, got {games!r}")
        out = [check_index(f"{name}[{i}]", g, self.num_games) for i, g in enumerate(games)]
        if not out:
            raise ValueError(f"{name} must name at least one game, got []")
        return out

    def _out(self, out: TransitionBatch | None, rows: int) -> TransitionBatch:
        if out is None:
            return self._allocate(rows)
        if not isinstance(out, TransitionBatch):
            raise TypeError(f"out must be a TransitionBatch (see empty_batch), got {type(out).__name__}")
        for f in fields(out):
            value = getattr(out, f.name)
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"out.{f.name} must be a torch.Tensor, got {type(value).__name__}")
        if out.obs.dim() != 4:
            raise ValueError(f"out.obs must have shape [{rows}, {self.stack}, 84, 84], got {list(out.obs.shape)}")
        if out.batch_size != rows:
            raise ValueError(f"out holds {out.batch_size} rows, this call writes {rows}")
        return out

    @staticmethod
    def _clip(reward_clip) -> float | None:
        if reward_clip is None:
            return None
        if isinstance(reward_clip, (bool, np.bool_)) or not isinstance(reward_clip, (int, float, np.integer, np.floating)):
            raise TypeError(f"reward_clip must be None or a number > 0, got {reward_clip!r} of type "
                            f"{type(reward_clip).__name__}")
        if not reward_clip > 0:
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
        for i, g in enumerate(game_list):
            if g in game_list[:i]:
                raise ValueError(f"sample: game {g} is requested twice")
        if per_game is not None:
            per_game = check_int("per_game", per_game, 1)
            rows, batch_size = per_game * len(game_list), 0
        else:
            rows = batch_size = check_int("batch_size", batch_size, 1)
            per_game = 0
        if seed is not None:
            seed = check_int("seed", seed, 0, UINT64_MAX)
        clip = self._clip(reward_clip)
        # The size checks come before the output is allocated (C++ repeats them on its own snapshot).
        held = [self._m.num_transitions(g) for g in game_list]
        if 0 in held:
            g = game_list[held.index(0)]
            raise ValueError(f"sample: game {g} has no transitions to sample yet (it holds {self._m.num_records(g)} "
                             f"records)")
        if per_game and per_game > min(held):
            g = game_list[held.index(min(held))]
            raise ValueError(f"sample: per_game = {per_game} is more than the {min(held)} transitions game {g} holds")
        if batch_size and batch_size > sum(held):
            raise ValueError(f"sample: batch_size = {batch_size} is more than the {sum(held)} transitions the "
                             f"requested games hold")
        out = self._out(out, rows)
        self._m.sample_into(game_list, per_game, batch_size, seed, clip, out.obs, out.next_obs, out.action,
                            out.reward, out.discount, out.done, out.game_id, out.env_id, out.index)
        return out

    def _env_ids(self, env_ids) -> np.ndarray:
        """env_ids as int64 [n]; ValueError for a wrong shape, TypeError for a wrong type, IndexError for an
        unknown env (also one beyond int64)."""
        ids = host_array("env_ids", env_ids)
        if ids.ndim != 1:
            raise ValueError(f"env_ids must be 1-D, got shape {ids.shape}")
        if ids.size == 0:
            return np.zeros(0, np.int64)
        if ids.dtype == np.bool_ or not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"env_ids must be an integer array, got dtype {ids.dtype}")
        if ids.min() < 0 or ids.max() >= self._num_envs:
            bad = ids[(ids < 0) | (ids >= self._num_envs)][0]
            raise IndexError(f"env_ids: env id {bad} is out of range [0, {self._num_envs})")
        return np.ascontiguousarray(ids, dtype=np.int64)

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
        return self._m.valid_indices(check_index("game", game, self.num_games))

    def num_transitions(self, game: int | None = None) -> int:
        """Transitions sample() can return now, of one game or (None) of all games."""
        games = range(self.num_games) if game is None else [check_index("game", game, self.num_games)]
        return sum(self._m.num_transitions(g) for g in games)

    def num_records(self, game: int | None = None) -> int:
        """Records kept now (at most the capacity), of one game or (None) of all games."""
        games = range(self.num_games) if game is None else [check_index("game", game, self.num_games)]
        return sum(self._m.num_records(g) for g in games)

    def env_written(self, env: int) -> int:
        """Records env has added since creation: the index its next record gets."""
        return self._m.env_written(check_index("env", env, self.num_envs))

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

        Validated before anything is replaced (ValueError / TypeError naming the key): the format tag, every
        key's presence, type (CPU tensors), dtype and shape; envs, games, capacities and stack against this
        memory; env_written counts in [0, 2^62]; the record arrays holding exactly the records those counts
        keep (sum over envs of min(env_written, the env's ring capacity)); what add() would refuse: flag bits
        outside terminated | truncated | life_loss | episode_start, negative actions, non-finite rewards; and
        seed_calls in [0, 2^64). Not validated, because any value is a record add() could have stored: frame
        pixels, action and reward values, flag combinations, and how the records are split over envs when the
        per-env counts were altered without changing the kept total (the records would then be attributed to the
        wrong envs and stacks would mix their frames). Load only state dicts this package wrote.
        """
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict (a ReplayMemory state_dict), got {type(state).__name__}")
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"state is not a ReplayMemory state_dict (format {STATE_FORMAT!r} expected)")
        missing = [key for key in _STATE_KEYS if key not in state]
        if missing:
            raise ValueError(f"state is missing key {missing[0]!r} (a ReplayMemory state_dict has {_STATE_KEYS})")
        saved_ids = _state_tensor(state, "env_game_ids", None, (None,)).numpy()
        if not np.array_equal(saved_ids, self.env_game_ids):
            raise ValueError(f"state env_game_ids {saved_ids.tolist()} differ from this memory's "
                             f"{self.env_game_ids.tolist()}")
        saved_capacity = tuple(_state_tensor(state, "capacity", None, (None,)).tolist())
        if saved_capacity != self.capacity:
            raise ValueError(f"state capacity {saved_capacity} differs from this memory's {self.capacity}")
        saved_stack = check_int("state['stack']", state["stack"], 1)
        if saved_stack != self.stack:
            raise ValueError(f"state stack {saved_stack} differs from this memory's {self.stack}")
        env_written = _state_tensor(state, "env_written", torch.int64, (self.num_envs,)).tolist()
        for env, written in enumerate(env_written):
            if not 0 <= written <= MAX_ENV_WRITTEN:
                raise ValueError(f"state['env_written'][{env}] = {written} is not in [0, 2^62]")
        records = sum(min(w, self._m.env_capacity(env)) for env, w in enumerate(env_written))
        arrays = {}
        for key, dtype, shape in (("frames", torch.uint8, (None, FRAME_SIZE, FRAME_SIZE)),
                                  ("actions", torch.int32, (None,)), ("rewards", torch.float32, (None,)),
                                  ("flags", torch.uint8, (None,))):
            value = _state_tensor(state, key, dtype, shape)
            if value.shape[0] != records:
                raise ValueError(f"state[{key!r}] must have shape {[records, *shape[1:]]}: it holds {value.shape[0]} "
                                 f"records but state['env_written'] keeps {records} (per env: min(env_written, "
                                 f"ring capacity))")
            arrays[key] = value.contiguous()
        for key, bad, what in (("flags", arrays["flags"] & (0xFF ^ FLAG_BITS) != 0, f"has bits outside {FLAG_BITS:#04x}"),
                               ("actions", arrays["actions"] < 0, "is negative"),
                               ("rewards", ~torch.isfinite(arrays["rewards"]), "is not finite")):
            if bad.any():
                i = int(bad.nonzero()[0, 0])
                raise ValueError(f"state[{key!r}][{i}] = {arrays[key][i].item()} {what}: add() never stores that")
        seed_calls = check_int("state['seed_calls']", state["seed_calls"], 0, UINT64_MAX)
        self._m.import_state(env_written, arrays["frames"], arrays["actions"], arrays["rewards"], arrays["flags"],
                             seed_calls)

    def __repr__(self) -> str:
        return (f"ReplayMemory(capacity={list(self.capacity)}, num_envs={self.num_envs}, stack={self.stack}, "
                f"n_step={self.n_step}, gamma={self.gamma:.4g}, life_loss_terminal={self.life_loss_terminal}, "
                f"transitions={len(self)}, nbytes={self.nbytes})")
