"""One replay memory per game of a pool, each seeded as that game's own run would seed it.

Experts trained together (agents/dqn.py) keep what each expert would have alone: its own replay of its
own envs, sampled with its own seed, ``batch_size`` rows per update. This wrapper gives the run loop and
the learner the one-replay face they use (add_step, num_transitions(game), empty_batch) and samples
every game into its slice of one minibatch, grouped by game:

    rows [g * B, (g + 1) * B) = memories[g].sample(B)     (game_id set to g, env_id to the pool's env id)

The pool orders envs by game (env e plays game e // envs_per_game), and each memory numbers its envs
0 .. envs_per_game - 1. Concurrency is each ReplayMemory's: one adding thread, any number of samplers.
"""

from __future__ import annotations

from dataclasses import fields

import numpy as np

from ..native.pool import MultiGameEnvPool
from ..native.replay import ReplayMemory, TransitionBatch


class PerGameReplays:
    def __init__(self, pool: MultiGameEnvPool, capacity: int, seeds: list[int], **kwargs):
        if len(seeds) != pool.num_games:
            raise ValueError(f"seeds must give one seed per game ({pool.num_games}), got {seeds!r}")
        self.envs_per_game = pool.num_envs // pool.num_games
        self.num_games = pool.num_games
        local_ids = np.zeros(self.envs_per_game, np.int64)
        self.memories = [ReplayMemory(capacity, local_ids, stack=pool.stack, seed=seed, **kwargs) for seed in seeds]

    def add_step(self, step, actions) -> None:
        """Store a pool step's rows (any envs, any order), each in its game's memory."""
        if self.num_games == 1:
            self.memories[0].add_step(step, actions)
            return
        actions = np.asarray(actions)
        for g, memory in enumerate(self.memories):
            rows = np.flatnonzero(step.game_id == g)
            if len(rows):
                memory.add(step.env_id[rows] - g * self.envs_per_game, step.obs[rows, -1], actions[rows],
                           step.reward[rows], step.terminated[rows], step.truncated[rows], step.life_loss[rows],
                           step.episode_start[rows])

    def num_transitions(self, game: int) -> int:
        return self.memories[game].num_transitions()

    def empty_batch(self, batch_size: int, pin_memory: bool = False) -> TransitionBatch:
        return self.memories[0].empty_batch(batch_size, pin_memory=pin_memory)

    def sample(self, batch_size: int, *, reward_clip: float | None = None, out: TransitionBatch) -> TransitionBatch:
        """batch_size rows of every game, grouped by game, into out (num_games x batch_size rows)."""
        if out.batch_size != batch_size * self.num_games:
            raise ValueError(f"out holds {out.batch_size} rows, this call writes {batch_size * self.num_games}")
        if self.num_games == 1:
            return self.memories[0].sample(batch_size, reward_clip=reward_clip, out=out)
        for g, memory in enumerate(self.memories):
            rows = slice(g * batch_size, (g + 1) * batch_size)
            part = memory.sample(batch_size, reward_clip=reward_clip,
                                 out=TransitionBatch(**{f.name: getattr(out, f.name)[rows] for f in fields(out)}))
            part.game_id.fill_(g)
            part.env_id.add_(g * self.envs_per_game)
        return out
