"""The paper's test epoch, for any policy over a pool of one or many games.

Protocol (Mnih et al. 2015; Actor-Mimic section 5): after every training epoch, play for a fixed budget
of emulator frames per game with epsilon-greedy actions (epsilon 0.05), full games (a lost life never
ends an episode), up to 30 random no-ops at every episode start; report the mean and the max reward of
the episodes that *completed* within the budget. The episode in progress when the budget runs out is
dropped, as in DeepMind's code.

When no episode of a game completes within its budget, its ``mean`` and ``max`` are NaN and
``episodes`` is 0; ``partial_return`` then holds the largest return reached by an unfinished episode, so
a caller can see what happened instead of reading a made-up score.

    result = evaluate(act, ["pong"], frames_per_game=125_000)      # act(obs, game_ids) -> full actions
    result["pong"].mean, result["pong"].max, result["pong"].episodes
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from ..native.pool import MultiGameEnvPool
from .acting import masked_argmax

ActFn = Callable[[torch.Tensor, torch.Tensor], "torch.Tensor | np.ndarray"]


@dataclass
class GameResult:
    """Test-epoch outcome of one game."""

    game: str
    episodes: int                 # completed episodes
    mean: float                   # mean return of completed episodes (NaN if none)
    max: float                    # best return of a completed episode (NaN if none)
    frames: int                   # emulator frames played for this game
    partial_return: float = math.nan  # best unfinished return, reported when no episode completed
    returns: list = field(default_factory=list)
    reward: float = 0.0           # every reward of the budget's steps, in finished episodes or not (all envs)


def evaluate(act: ActFn, games: Sequence[str] | None = None, *, frames_per_game: int | None = None,
             episodes_per_game: int | None = None, epsilon: float = 0.05, envs_per_game: int = 1,
             seed: int = 0, noop_max: int = 30, frame_skip: int = 4, max_episode_frames: int = 108_000,
             pool: MultiGameEnvPool | None = None, max_frames_per_game: int | None = None,
             on_frame: Callable[[np.ndarray, np.ndarray], None] | None = None) -> dict[str, GameResult]:
    """Run a test epoch; returns {game: GameResult}.

    act: maps uint8 observations [n, stack, 84, 84] (a CPU tensor) and int64 game ids [n] to actions in
        the full 18-action set (tensor or array [n]); called once per step for all envs. Actions outside a
        game's legal set raise (see MultiGameEnvPool).
    frames_per_game: the paper's budget (125,000), shared by the game's envs; or
    episodes_per_game: play until that many episodes of every game completed (``max_frames_per_game``
        optionally caps it; episodes still short are then reported as above).
    epsilon: probability of a uniformly random *legal* action, per env and step (each game draws from its
        own stream, so a game's result does not depend on which other games share the pool).
    pool: play in this pool (reset first) instead of building one from games/envs_per_game/seed/...;
        frame_skip must then be the pool's.
    With several envs per game, every episode that completes within the budget counts; each env plays a
    window of frames_per_game / envs_per_game frames, so episodes longer than that never count and short ones
    are over-represented (a lot in games whose good episodes are long, e.g. Atlantis: docs/training-core.md).
    on_frame: called with (obs, done) after every step (for recording videos).
    """
    if (frames_per_game is None) == (episodes_per_game is None):
        raise ValueError(f"give exactly one of frames_per_game and episodes_per_game, got "
                         f"frames_per_game={frames_per_game!r}, episodes_per_game={episodes_per_game!r}")
    if not 0 <= epsilon <= 1:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon!r}")
    for name, value in (("frames_per_game", frames_per_game), ("episodes_per_game", episodes_per_game)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1, got {value!r}")
    own_pool = pool is None
    if own_pool:
        if not games:
            raise ValueError(f"games must name at least one game when no pool is given, got {games!r}")
        pool = MultiGameEnvPool(list(games), envs_per_game=envs_per_game, seed=seed, noop_max=noop_max,
                                frame_skip=frame_skip, max_episode_frames=max_episode_frames)
    try:
        return _play(act, pool, frames_per_game, episodes_per_game, epsilon, seed, frame_skip,
                     max_frames_per_game, on_frame)
    finally:
        if own_pool:
            pool.close()


def test_seed(seed: int, epoch: int) -> int:
    """The seed of test epoch `epoch` (1-based): a stream no training env uses."""
    return seed + 100_003 + epoch - 1


def test_epoch_results(act: ActFn, games: Sequence[str], cfg, epoch: int) -> dict[str, GameResult]:
    """A training run's test epoch ``epoch`` (1-based) of act on games, as the run's settings say: the
    budget, epsilon and envs of EvaluationSettings, the envs' play of EnvSettings, the seed test_seed(cfg.seed,
    epoch). Every trainer's test epoch is this call."""
    return evaluate(act, games, frames_per_game=cfg.test_epoch_frames, epsilon=cfg.test_epsilon,
                    envs_per_game=cfg.test_envs, seed=test_seed(cfg.seed, epoch), noop_max=cfg.noop_max,
                    frame_skip=cfg.frame_skip, max_episode_frames=cfg.max_episode_frames)


def _play(act, pool, frames_per_game, episodes_per_game, epsilon, seed, frame_skip, max_frames_per_game,
          on_frame) -> dict[str, GameResult]:
    # One exploration stream per game, keyed by its name: a game's test epoch is the same whichever games
    # share the pool (experts trained together test like experts trained alone).
    rngs = [np.random.default_rng([seed, 0xE7A1, zlib.crc32(game.encode())]) for game in pool.games]
    num_games, game_ids = pool.num_games, pool.game_ids.astype(np.int64)
    envs_of_game = [np.flatnonzero(game_ids == g) for g in range(num_games)]
    legal = [np.flatnonzero(m) for m in pool.action_masks]
    env_legal = [legal[g] for g in game_ids]
    game_ids_t = torch.from_numpy(game_ids)
    returns: list[list[float]] = [[] for _ in range(num_games)]
    running = np.zeros(pool.num_envs, np.float64)
    frames = np.zeros(num_games, np.int64)
    rewards = np.zeros(num_games, np.float64)

    out = pool.reset()
    obs = pool.env_tensors.obs
    while True:
        if frames_per_game is not None:
            open_games = frames < frames_per_game
        else:
            open_games = np.array([len(r) < episodes_per_game for r in returns])
            if max_frames_per_game is not None:
                open_games &= frames < max_frames_per_game
        if not open_games.any():
            break
        actions = np.asarray(act(obs, game_ids_t) if epsilon < 1 else np.zeros(pool.num_envs, np.int64))
        actions = actions.astype(np.int64, copy=True).reshape(pool.num_envs)
        for g, envs in enumerate(envs_of_game):
            for env in envs[rngs[g].random(len(envs)) < epsilon]:
                actions[env] = rngs[g].choice(env_legal[env])
        out = pool.step(actions)
        counted = open_games[game_ids]          # steps of a game past its budget are not counted
        frames += np.bincount(game_ids[counted], minlength=num_games) * frame_skip
        step_reward = np.where(out.episode_start, 0.0, out.reward)
        running += step_reward
        rewards += np.bincount(game_ids[counted], weights=step_reward[counted], minlength=num_games)
        for env in np.flatnonzero(out.done & counted):
            returns[game_ids[env]].append(float(out.episode_return[env]))
        running[out.done] = 0.0
        running[out.episode_start] = 0.0
        if on_frame is not None:
            on_frame(out.obs, out.done)

    results = {}
    for g, game in enumerate(pool.games):
        r = returns[g]
        partial = float(running[game_ids == g].max()) if not r else math.nan
        results[game] = GameResult(game=game, episodes=len(r), mean=float(np.mean(r)) if r else math.nan,
                                   max=float(np.max(r)) if r else math.nan, frames=int(frames[g]),
                                   partial_return=partial, returns=r, reward=float(rewards[g]))
    return results


def greedy_act(network: torch.nn.Module, legal_actions: Sequence[int] | np.ndarray,
               device: str | torch.device = "cpu") -> ActFn:
    """act() for a single-game network whose outputs are the game's legal actions (an expert DQN)."""
    legal = torch.as_tensor(np.asarray(legal_actions), dtype=torch.int64)

    @torch.no_grad()
    def act(obs: torch.Tensor, game_ids: torch.Tensor) -> np.ndarray:
        q = network(obs.to(device, non_blocking=True))
        return legal[q.argmax(1).cpu()].numpy()

    return act


def masked_greedy_act(network: torch.nn.Module, action_masks: np.ndarray | torch.Tensor,
                      device: str | torch.device = "cpu",
                      forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> ActFn:
    """act() for a multi-game network with 18 outputs (the AMN, MDQN): argmax over each game's legal actions.

    action_masks: bool [num_games, 18], row g = game g's legal actions (MultiGameEnvPool.action_masks).
    forward(obs, game_ids) replaces network(obs) for networks with per-game heads (MCDQN).
    """
    masks = torch.tensor(np.array(action_masks, dtype=bool), device=device)   # a copy: pool masks are read-only
    run = forward if forward is not None else (lambda obs, game_ids: network(obs))

    @torch.no_grad()
    def act(obs: torch.Tensor, game_ids: torch.Tensor) -> np.ndarray:
        ids = game_ids.to(device)
        return masked_argmax(run(obs.to(device, non_blocking=True), ids), masks[ids]).cpu().numpy()

    return act
