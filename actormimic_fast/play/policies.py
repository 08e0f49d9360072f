"""A checkpoint of any kind -> one policy ``act(obs, game_ids)`` over its games (for evaluate and play).

    policy = load_policy(["runs/amn/checkpoint.pt"])                        # an AMN, MDQN or MCDQN
    policy = load_policy(["runs/pong/checkpoint.pt", "runs/boxing/checkpoint.pt"])   # experts, one per game
    pool = MultiGameEnvPool(policy.games)          # game id g of the pool = policy.games[g]
    actions = policy.act(pool.env_tensors.obs, torch.from_numpy(pool.game_ids).long())

Every kind acts greedily over its game's legal actions (full 18-action indices): an expert's outputs are
its game's minimal action set; an AMN's, MDQN's and MCDQN's 18 outputs are masked to each game's set.
The trainers' checkpoint formats are read only through the imports below (one place to re-point).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

# The trainers' loaders: expert (agents/dqn.py), MDQN/MCDQN (agents/multitask_dqn.py), AMN (agents/distill.py).
from ..agents.distill import action_masks, load_amn
from ..agents.dqn import load_expert
from ..agents.multitask_dqn import VARIANTS as MULTITASK_KINDS
from ..agents.multitask_dqn import load_multitask_dqn, q_values
from ..files.checkpoint import load_checkpoint
from ..run.evaluation import ActFn, greedy_act, masked_greedy_act

MULTI_GAME_KINDS = ("amn", *MULTITASK_KINDS)


@dataclass(frozen=True)
class Policy:
    """What a loaded checkpoint plays: its games (pool order), their legal actions and the act function."""

    kind: str                   # "amn", "mdqn", "mcdqn" or "experts"
    games: tuple[str, ...]
    action_masks: np.ndarray    # bool [num_games, 18]: the checkpoint's legal actions per game
    act: ActFn                  # act(uint8 obs [n, 4, 84, 84], int64 game ids [n]) -> full-set actions [n]


def _experts_act(networks: list[torch.nn.Module], metas: list[dict], device) -> ActFn:
    """Row b is played by the expert of game game_ids[b] (each expert runs once, on its game's rows)."""
    per_game = [greedy_act(network, meta["actions"], device) for network, meta in zip(networks, metas)]

    def act(obs: torch.Tensor, game_ids: torch.Tensor) -> np.ndarray:
        actions = np.zeros(len(game_ids), np.int64)
        ids = game_ids.cpu().numpy()
        for g, expert_act in enumerate(per_game):
            rows = np.flatnonzero(ids == g)
            if rows.size:
                actions[rows] = expert_act(obs[torch.from_numpy(rows)], game_ids[torch.from_numpy(rows)])
        return actions

    return act


def load_policy(paths: Sequence[str | os.PathLike], device: str | torch.device = "cpu") -> Policy:
    """One AMN / MDQN / MCDQN checkpoint, or one or more expert checkpoints (one per game).

    Raises FileNotFoundError for a missing file and ValueError for an empty list, a file that is not a
    checkpoint of this package, several multi-game checkpoints, a multi-game checkpoint mixed with
    experts, or two experts of one game.
    """
    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError(f"checkpoints must name one AMN/MDQN/MCDQN checkpoint or one expert per game, got {paths}")
    kinds = [load_checkpoint(p, map_location="cpu")["meta"].get("kind") for p in paths]
    for path, kind in zip(paths, kinds):
        if kind not in ("expert", *MULTI_GAME_KINDS):
            raise ValueError(f"checkpoint {path!r} has kind={kind!r}; play takes kinds "
                             f"{('expert', *MULTI_GAME_KINDS)}")
    multi = [(p, k) for p, k in zip(paths, kinds) if k != "expert"]
    if multi and len(paths) > 1:
        raise ValueError(f"checkpoints: a multi-game checkpoint ({multi[0][1]} {multi[0][0]!r}) plays alone; "
                         f"got {len(paths)} checkpoints {paths}")
    if multi:
        path, kind = multi[0]
        if kind == "amn":
            network, meta = load_amn(path, device)
            act = masked_greedy_act(network, action_masks(meta["actions"]), device)
        else:
            network, meta = load_multitask_dqn(path, device=device)
            act = masked_greedy_act(network, action_masks(meta["actions"]), device,
                                    forward=lambda obs, ids: q_values(network, obs, ids))
        return Policy(kind, tuple(meta["games"]), action_masks(meta["actions"]), act)
    loaded = [load_expert(p, device=device) for p in paths]
    games = [meta["game"] for _, meta in loaded]
    repeated = sorted({g for g in games if games.count(g) > 1})
    if repeated:
        raise ValueError(f"checkpoints: experts must be for different games, got {repeated} more than once in {paths}")
    networks, metas = [n for n, _ in loaded], [m for _, m in loaded]
    return Policy("experts", tuple(games), action_masks([m["actions"] for m in metas]), _experts_act(networks, metas, device))


def check_pool_matches(policy: Policy, pool_masks: np.ndarray) -> None:
    """ValueError when the pool's legal actions differ from those the checkpoint was trained with."""
    for g, game in enumerate(policy.games):
        if not np.array_equal(policy.action_masks[g], pool_masks[g]):
            raise ValueError(f"checkpoint's legal actions for {game!r} {np.flatnonzero(policy.action_masks[g]).tolist()} "
                             f"differ from the emulator's {np.flatnonzero(pool_masks[g]).tolist()}")
