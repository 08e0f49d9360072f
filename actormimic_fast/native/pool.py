"""Python face of the C++ multi-game ALE pool (csrc/env/multi_game_env_pool.h).

    pool = MultiGameEnvPool(["pong", "breakout"], envs_per_game=2)
    obs = pool.reset().obs                      # [4, 4, 84, 84] uint8
    out = pool.step(actions)                    # actions: [num_envs] ints in the full 18-action set

Actions index the full Atari set for every game; ``pool.action_masks[g]`` marks game g's legal ones and
``pool.game_ids[env]`` gives each env's game. Episodes reset automatically on the step after they end
("next-step" autoreset): that step ignores its action and returns the new episode's first observation
with ``episode_start`` set and reward 0.

Returned arrays are read-only views of the pool's own buffers: valid until the next call that writes
them (step/reset for per-env outputs, recv for batches). Copy what must outlive that.
``pool.env_tensors`` / ``pool.batch_tensors`` hold zero-copy torch tensors of the same buffers.
``pool.capture_screens(env_ids)`` makes chosen envs also write the emulator's colour screen into
``pool.screens`` (for videos, actormimic_fast/play/video.py); the others pay nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from .. import _C
from .argument_checks import INT32_MAX, check_bool, check_index, check_int, check_real, host_array, int_array
from .games import NUM_ACTIONS, canonical_name, rom_path

# Upper bounds of the pool's settings. Each drives a loop or an allocation, so an unbounded value would hang a
# reset (noop_max), a step (frame_skip) or exhaust memory (stack, the number of envs) instead of failing.
MAX_ENVS = 4096                 # envs in one pool (games x envs_per_game); each is a whole emulator
MAX_FRAME_SKIP = 1000           # emulator frames per agent step
MAX_STACK = 64                  # frames per observation
MAX_NOOP_MAX = 10_000           # NOOP frames at a reset, at most

_FIELDS = ("obs", "reward", "terminated", "truncated", "life_loss", "episode_start", "episode_return",
           "episode_length", "lives", "env_id", "game_id")


@dataclass(frozen=True)
class PoolStep:
    """One reset/step/recv result; every field has one row per env (or per batch entry)."""

    obs: np.ndarray             # uint8 [n, stack, 84, 84], oldest frame first
    reward: np.ndarray          # float32 [n], raw (unclipped)
    terminated: np.ndarray      # bool [n], real game over
    truncated: np.ndarray       # bool [n], episode frame cap reached
    life_loss: np.ndarray       # bool [n], a life was lost this step (not a termination)
    episode_start: np.ndarray   # bool [n], obs starts a new episode (after a reset)
    episode_return: np.ndarray  # float32 [n], return of the episode that just ended (where it ended)
    episode_length: np.ndarray  # int32 [n], agent steps of that episode (where it ended)
    lives: np.ndarray           # int32 [n]
    env_id: np.ndarray          # int32 [n]
    game_id: np.ndarray         # int32 [n]

    @property
    def done(self) -> np.ndarray:
        return self.terminated | self.truncated


def _read_only(arrays: dict) -> PoolStep:
    views = {k: arrays[k].view() for k in _FIELDS}
    for v in views.values():
        v.flags.writeable = False
    return PoolStep(**views)


def _tensors(arrays: dict) -> PoolStep:
    import torch

    return PoolStep(**{k: torch.from_numpy(arrays[k]) for k in _FIELDS})



def _actions_array(actions, expected: int, name: str = "actions") -> np.ndarray:
    if type(actions) is np.ndarray and actions.dtype == np.int64 and actions.shape == (expected,) \
            and actions.flags.c_contiguous:
        return actions          # already what C++ reads (it checks each action against its env's legal set)
    arr = int_array(name, actions, np.int64)
    if arr.shape != (expected,):
        raise ValueError(f"{name} must have shape ({expected},), got {arr.shape}")
    return arr


def _game_names(games) -> list[str]:
    """games as a non-empty list of distinct ROM ids (one name or a sequence of names)."""
    if isinstance(games, str):
        games = [games]
    if isinstance(games, (bytes, dict, set, frozenset)) or not isinstance(games, Iterable):
        raise TypeError(f"games must be a game name or a sequence of names, got {games!r} of type "
                        f"{type(games).__name__}")
    names = [canonical_name(g) for g in games]
    if not names:
        raise ValueError("games must name at least one game, got []")
    if len(set(names)) != len(names):
        raise ValueError(f"games must not repeat (use envs_per_game for copies), got {names}")
    return names


def _rom_paths(roms, games: list[str]) -> list[tuple[str, str]]:
    """(game, ROM path) for every game: roms[game] where given, else the ROM of the ale-py wheel. Whether a
    given ROM is that game's is checked by the C++ pool (ALE knows each game's ROM by its MD5 checksum)."""
    if roms is None:
        roms = {}
    if not isinstance(roms, dict):
        raise TypeError(f"roms must be a dict {{game: ROM path}}, got {type(roms).__name__}")
    given = {}
    for game, path in roms.items():
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"roms[{game!r}] must be a path (str or os.PathLike), got {path!r} of type "
                            f"{type(path).__name__}")
        given[canonical_name(game)] = os.fspath(path)
    unknown = set(given) - set(games)
    if unknown:
        raise ValueError(f"roms names games that are not in games: {sorted(unknown)}")
    return [(g, given[g] if g in given else rom_path(g)) for g in games]


class MultiGameEnvPool:
    """Many Atari envs of different games stepped by C++ worker threads, with DQN preprocessing in C++.

    Args:
        games: game names (ale-py ROM ids, e.g. "space_invaders"); env i plays games[i // envs_per_game].
        envs_per_game: copies of each game (at most 4096 envs in all).
        num_threads: threads that step envs, the caller's own included (it works while it waits in
            step/reset/recv), so num_threads - 1 background threads (at most one per env) step envs
            while the caller does other work between send() and recv(); default: all cores.
        batch_size: envs returned by each recv() in async mode (default: all envs).
        seed: fixes every env's ALE RNG and no-ops; an env's streams depend on (seed, game, copy index)
            only, never on the thread count or on the other games in the pool.
        frame_skip: emulator frames per agent step (1..1000); the observation is the max of the last two.
        stack: frames per observation (1..64); frames before an episode's first are zero.
        noop_max: a reset plays uniform{1..noop_max} NOOP frames (0 disables; at most 10,000).
        fire_reset: press FIRE for one agent step after the no-ops, in games where FIRE is legal (a bool).
        repeat_action_probability: ALE sticky actions (0 as in the paper).
        max_episode_frames: emulator frames before an episode is truncated (0: no cap).
        invalid_action: "error" (default) raises for an action outside the game's legal set; "noop"
            plays NOOP instead.
        roms: optional {game: path} of ROM files to use instead of the ones in the ale-py wheel; each must be
            that game's ROM (ALE identifies ROMs by their MD5 checksum), else ValueError.

    Every argument is checked before any emulator starts: TypeError for a wrong type (flags must be real
    bools), ValueError for a value out of range, naming the argument.
    """

    def __init__(self, games: Sequence[str], envs_per_game: int = 1, num_threads: int | None = None,
                 batch_size: int | None = None, seed: int = 0, frame_skip: int = 4, stack: int = 4,
                 noop_max: int = 30, fire_reset: bool = False, repeat_action_probability: float = 0.0,
                 max_episode_frames: int = 108_000, invalid_action: str = "error",
                 roms: dict[str, str] | None = None):
        games = _game_names(games)
        roms = _rom_paths(roms, games)
        envs_per_game = check_int("envs_per_game", envs_per_game, 1)
        if len(games) * envs_per_game > MAX_ENVS:
            raise ValueError(f"envs_per_game must be at most {MAX_ENVS // len(games)} (a pool holds at most "
                             f"{MAX_ENVS} envs; {len(games)} games), got {envs_per_game}")
        num_envs = len(games) * envs_per_game
        if num_threads is None:
            num_threads = os.cpu_count() or 1
        num_threads = min(check_int("num_threads", num_threads, 1), num_envs + 1)
        batch_size = num_envs if batch_size is None else check_int("batch_size", batch_size, 1, num_envs)
        if not isinstance(invalid_action, str) or invalid_action not in ("error", "noop"):
            raise ValueError(f"invalid_action must be 'error' or 'noop', got {invalid_action!r}")
        repeat_action_probability = check_real("repeat_action_probability", repeat_action_probability)
        if not 0 <= repeat_action_probability <= 1:
            raise ValueError(f"repeat_action_probability must be in [0, 1], got {repeat_action_probability!r}")

        config = _C.EnvConfig()
        config.frame_skip = check_int("frame_skip", frame_skip, 1, MAX_FRAME_SKIP)
        config.stack = check_int("stack", stack, 1, MAX_STACK)
        config.noop_max = check_int("noop_max", noop_max, 0, MAX_NOOP_MAX)
        config.fire_reset = check_bool("fire_reset", fire_reset)
        config.repeat_action_probability = repeat_action_probability
        config.max_episode_frames = check_int("max_episode_frames", max_episode_frames, 0, INT32_MAX)
        seed = check_int("seed", seed, 0, 2**64 - 1)

        self.games = tuple(games)
        self.envs_per_game = envs_per_game
        self._pool = _C.MultiGameEnvPool(roms, envs_per_game, num_threads, batch_size, seed, config,
                                         invalid_action == "noop")
        env_arrays, batch_arrays = self._pool.env_outputs(), self._pool.batch_outputs()
        self._env_outputs = _read_only(env_arrays)
        self._batch_outputs = _read_only(batch_arrays)
        # Zero-copy torch views of the same buffers (fields are torch tensors): updated in place by
        # every step()/reset() (env_tensors) or recv() (batch_tensors). Treat them as read-only.
        self.env_tensors: PoolStep = _tensors(env_arrays)
        self.batch_tensors: PoolStep = _tensors(batch_arrays)
        self.action_masks: np.ndarray = self._pool.action_masks      # bool [num_games, 18]
        self.game_ids: np.ndarray = self._pool.game_ids              # int32 [num_envs]
        self.action_masks.flags.writeable = False
        self.game_ids.flags.writeable = False
        self._screens: np.ndarray | None = None   # the colour screens' view, once an env captures

    # -- sizes -------------------------------------------------------------------------------------
    @property
    def num_envs(self) -> int:
        return self._pool.num_envs

    @property
    def num_games(self) -> int:
        return self._pool.num_games

    @property
    def num_threads(self) -> int:
        return self._pool.num_threads

    @property
    def batch_size(self) -> int:
        return self._pool.batch_size

    @property
    def stack(self) -> int:
        """Frames per observation."""
        return self._env_outputs.obs.shape[1]

    @property
    def num_actions(self) -> int:
        return NUM_ACTIONS

    @property
    def env_action_masks(self) -> np.ndarray:
        """bool [num_envs, 18]: the legal actions of each env's game."""
        return self.action_masks[self.game_ids]

    def legal_actions(self, game: int | str) -> np.ndarray:
        """The legal actions (full-set indices) of a game given by index in [0, num_games) or by name;
        IndexError for an index out of range (negative ones included), ValueError for a game not in the pool."""
        if isinstance(game, str):
            name = canonical_name(game)
            if name not in self.games:
                raise ValueError(f"game: {game!r} is not a game of this pool, whose games are {list(self.games)}")
            index = self.games.index(name)
        else:
            index = check_index("game", game, self.num_games)
        return np.flatnonzero(self.action_masks[index])

    # -- synchronous -------------------------------------------------------------------------------
    def reset(self) -> PoolStep:
        """Reset every env; returns per-env outputs (episode_start all True)."""
        self._pool.reset()
        return self._env_outputs

    def step(self, actions) -> PoolStep:
        """Step every env with actions[env] (full 18-action indices); returns per-env outputs."""
        self._pool.step(_actions_array(actions, self.num_envs))
        return self._env_outputs

    # -- asynchronous (EnvPool style) ----------------------------------------------------------------
    def async_reset(self) -> None:
        """Queue a reset of every env; collect the results with recv()."""
        self._pool.async_reset()

    def send(self, actions, env_ids) -> None:
        """Queue actions[i] for env env_ids[i] (each env at most once until recv() returns it)."""
        ids = host_array("env_ids", env_ids)
        if ids.dtype == np.bool_ or not np.issubdtype(ids.dtype, np.integer) or ids.ndim != 1:
            raise TypeError(f"env_ids must be a 1-D integer array, got dtype {ids.dtype} shape {ids.shape}")
        actions = _actions_array(actions, ids.shape[0])
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_envs):
            bad = ids[(ids < 0) | (ids >= self.num_envs)][0]
            raise IndexError(f"env_ids: env id {bad} is out of range [0, {self.num_envs})")
        self._pool.send(actions, np.ascontiguousarray(ids, dtype=np.int32))

    def recv(self) -> PoolStep:
        """Wait for the first batch_size finished envs; rows are in finishing order, env_id says whose."""
        self._pool.recv()
        return self._batch_outputs

    # -- colour screens (videos) ---------------------------------------------------------------------
    def capture_screens(self, env_ids) -> None:
        """Make exactly the envs in env_ids write their emulator's colour screen into ``screens`` after
        every reset and step (ALE's RGB screen after the step's last emulator frame, not max-pooled);
        ``[]`` stops every capture. An env switched on gets its current screen at once. Envs not
        capturing cost nothing; observations never change. Changing the capture of an env whose action
        is in flight (async mode) raises ValueError: recv() it first."""
        ids = np.asarray(env_ids)
        if ids.size == 0:
            ids = ids.astype(np.int64)
        if ids.dtype == np.bool_ or not np.issubdtype(ids.dtype, np.integer) or ids.ndim != 1:
            raise TypeError(f"env_ids must be a 1-D sequence of integer env ids, got {env_ids!r}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_envs):
            bad = ids[(ids < 0) | (ids >= self.num_envs)][0]
            raise IndexError(f"env_ids: env id {bad} is out of range [0, {self.num_envs})")
        flags = np.zeros(self.num_envs, np.uint8)
        flags[ids] = 1
        self._pool.capture_screens(flags)
        if self._screens is None and ids.size:
            self._screens = self._pool.screens()
            self._screens.flags.writeable = False

    @property
    def capturing(self) -> np.ndarray:
        """bool [num_envs]: which envs capture their colour screen (see capture_screens)."""
        return self._pool.capturing

    @property
    def screens(self) -> np.ndarray:
        """uint8 [num_envs, 210, 160, 3], read-only view: row e is env e's colour screen after its last
        reset/step while it captures (a row stops changing when its capture stops). In async mode a row is
        valid from the recv() that returns its env until that env is sent again. RuntimeError before the
        first capture_screens() that names an env."""
        if self._screens is None:
            raise RuntimeError("screens: no env has captured its screen yet; call capture_screens(env_ids) first")
        return self._screens

    # -- lifetime ----------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the worker threads; any later call raises RuntimeError."""
        self._pool.close()

    @property
    def closed(self) -> bool:
        return self._pool.closed

    def __enter__(self) -> "MultiGameEnvPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"MultiGameEnvPool(games={list(self.games)}, envs_per_game={self.envs_per_game}, "
                f"num_threads={self.num_threads}, batch_size={self.batch_size})")
