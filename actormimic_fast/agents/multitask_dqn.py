"""Multitask DQN baselines of Actor-Mimic (appendix C), the algorithm top to bottom.

    summary = train_multitask_dqn(MultitaskDQNConfig(variant="mdqn", games="pong,boxing", out="runs/mdqn"))

Both variants run the expert DQN procedure (agents/dqn.py, whose Q-learning update they reuse) on all
games at once, with one network:
    MDQN   the Nature DQN with one shared 18-action output;
    MCDQN  the Nature DQN's convolutions shared, then a separate fc 512 + 18-action output per game
           (networks.MultiHeadDQN).
Only each game's legal actions count: they are the only ones explored and taken greedily, and the
bootstrap max_a Q_target(s_t, a) runs over the legal actions of s_t's game, so the Q-values of illegal
actions (never trained) never enter a target.

Update ratio. One gradient update of ``batch_size`` transitions per ``update_every`` agent steps summed
over all envs of all games: every transition is replayed batch_size / update_every = 8 times on average,
and every game gets, per frame it plays, the same number of sampled transitions as its expert would. The
one network therefore takes num_games times the updates of one expert per frame of a game; the target
is still copied every ``target_update`` updates (320k sampled transitions, as for an expert).

Units. Every frame count of the config is per game (every step of the run loop steps every env, so the
games advance together and per-game frame counts are exact): epsilon decays over each game's first 1M
frames, learning starts after 50k agent steps of each game, a training epoch is 250k frames of each game.
The replay holds ``replay_capacity`` transitions in all, split evenly over the games.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..files.checkpoint import RESUME_KEYS, check_actions, load_checkpoint, meta_value, restore
from ..run.evaluation import masked_greedy_act, test_epoch_results
from ..native.games import NUM_ACTIONS, PAPER_MULTITASK_GAMES, canonical_name
from ..models.networks import MultiHeadDQN, build_network
from ..native.replay import ReplayMemory, TransitionBatch
from ..run.acting import epsilon_greedy, masked_argmax
from ..run.context import RunContext
from ..run.loop import RunLoop, RunOutput, TestRow, make_schedule
from ..run.settings import (ComputeSettings, EnvSettings, EvaluationSettings, OutputSettings, QLearningSettings,
                            GameList, setting as _f)
from ..run.state import restore_rng, rng_state
from .dqn import QLearning

VARIANTS = ("mdqn", "mcdqn")


# -- settings --------------------------------------------------------------------------------------
@dataclass
class MultitaskDQNConfig(GameList, OutputSettings, EvaluationSettings, ComputeSettings, QLearningSettings, EnvSettings):
    """Every setting of a multitask DQN run; defaults are the expert DQN's (SPEC section 1), frame counts per game."""

    variant: str = _f("mdqn", "mdqn (one shared 18-action output) or mcdqn (shared convolutions, a separate "
                      "fc 512 + output per game)", choices=VARIANTS)
    games: str = _f(",".join(PAPER_MULTITASK_GAMES), "games trained together, separated by commas (ale-py ROM ids)",
                    names=True)
    frames_per_game: int = _f(10_000_000, "training length in emulator frames of each game (appendix C: 40 "
                              "epochs of 250k)", count=True, low=1)
    envs_per_game: int = _f(1, "envs of each game stepped by the pool; updates per agent step stay 1/update_every",
                            low=1)
    replay_capacity: int = _f(1_000_000, "replay memory size in transitions, all games together (split evenly)",
                              count=True, low=1)
    batch_sampling: str = _f("uniform", "uniform (over every stored transition of every game, one replay as in "
                             "the paper) or per_game (batch_size / number of games from each game)",
                             choices=("uniform", "per_game"))
    out: str = _f("runs/mdqn", "output folder: checkpoints, CSV files, TensorBoard events")

    TOML_TABLE = "multitask_dqn"
    CHECKPOINT_KINDS = VARIANTS
    PER_GAME = " of each game"

    def validate(self) -> None:
        super().validate()
        need, games = self.need, self.game_list
        need(bool(games), "games", "one or more game names separated by commas")
        need(len(set(games)) == len(games), "games", "distinct games (use envs_per_game for copies)")
        need(self.replay_capacity >= len(games) * self.batch_size, "replay_capacity",
             f">= number of games x batch_size ({len(games)} x {self.batch_size})")
        if self.batch_sampling == "per_game":
            need(self.batch_size % len(games) == 0, "batch_size",
                 f"a multiple of the number of games ({len(games)}) with batch_sampling='per_game'")


# -- the network --------------------------------------------------------------------------------------
def build_multitask_network(variant: str, num_games: int) -> torch.nn.Module:
    if variant == "mdqn":
        return build_network("nature", NUM_ACTIONS)
    if variant == "mcdqn":
        return MultiHeadDQN(num_games, NUM_ACTIONS)
    raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")


def q_values(network: torch.nn.Module, obs: torch.Tensor, game_ids: torch.Tensor) -> torch.Tensor:
    """Q(obs) [B, 18] of either variant: MCDQN routes row b through game game_ids[b]'s head."""
    if isinstance(network, MultiHeadDQN):
        return network(obs, game_ids)
    return network(obs)


def multitask_meta(cfg: MultitaskDQNConfig, action_masks: np.ndarray) -> dict:
    """What a checkpoint's weights are for; load_checkpoint(expect=...) compares these keys."""
    return {"kind": cfg.variant, "games": cfg.game_list,
            "actions": [np.flatnonzero(m).tolist() for m in action_masks],
            "architecture": "nature", "num_actions": NUM_ACTIONS}


def load_multitask_dqn(path: str | os.PathLike, variant: str | None = None, games: list[str] | None = None,
                       device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """A trained MDQN / MCDQN (online network, eval mode) and its meta; ValueError if it is not as asked.

    Q-values of either variant: q_values(network, obs, game_ids), game ids indexing meta["games"].
    """
    if variant is not None and variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    payload = load_checkpoint(path, map_location=device, require=("online",))
    meta = payload["meta"]
    if meta.get("kind") not in VARIANTS:
        raise ValueError(f"checkpoint {str(path)!r} was made for kind={meta.get('kind')!r}, not a multitask DQN "
                         f"(one of {VARIANTS})")
    expect = {"kind": variant} if variant else {}
    if games is not None:
        expect["games"] = [canonical_name(g) for g in games]
    for key, wanted in expect.items():
        if meta_value(path, meta, key) != wanted:
            raise ValueError(f"checkpoint {str(path)!r} was made for {key}={meta[key]!r}, not {key}={wanted!r}")
    network = build_multitask_network(meta["kind"], len(meta_value(path, meta, "games"))).to(device)
    restore(network, payload["online"], path, "online")
    return network.eval(), meta


# -- the algorithm ----------------------------------------------------------------------------------
class MultitaskDQN(QLearning):
    """One network Q-learning every game: the expert's update with each row's game masks and head."""

    FRAME_COUNTERS = {"frames": "all_games", "frames_per_game": "per_game"}

    METRICS = ("loss", "q_mean")

    def __init__(self, cfg: MultitaskDQNConfig, action_masks: np.ndarray, env_game_ids: np.ndarray,
                 device: torch.device, folder: Path, replay: ReplayMemory):
        games = cfg.game_list
        torch.manual_seed(cfg.seed)
        super().__init__(cfg, build_multitask_network(cfg.variant, len(games)), device)
        self.rng = np.random.default_rng(cfg.seed)
        self.games, self.action_masks = games, action_masks                 # bool [G, 18]
        self.legal_table = torch.from_numpy(action_masks).to(device)        # [G, 18]
        self.env_game_ids = env_game_ids
        self.masks = action_masks[env_game_ids]                              # bool [num_envs, 18]
        self.device_masks = torch.from_numpy(self.masks).to(device)
        self.env_game_ids_t = torch.from_numpy(env_game_ids)
        self.action_map = np.tile(np.arange(NUM_ACTIONS), (len(env_game_ids), 1))   # columns are full actions
        self.per_game_rows = cfg.batch_size // len(games) if cfg.batch_sampling == "per_game" else None
        self.batch_rows = cfg.batch_size
        # MCDQN groups rows per game on the host (MultiHeadDQN): its update reads the host game ids
        self.capturable = cfg.variant == "mdqn"
        self._host_game_ids: torch.Tensor | None = None
        run_info = {"kind": cfg.variant, "games": games, "architecture": "nature", "frame_skip": cfg.frame_skip,
                    "train_epoch_frames": cfg.train_epoch_frames, "frames_per_game": True}
        self.outputs = [RunOutput(folder, list(range(len(games))), run_info, cfg.variant, replay)]
        self.counters_extra: dict[str, int] = {}

    def q_values(self, network: torch.nn.Module, obs: torch.Tensor, batch: TransitionBatch) -> torch.Tensor:
        return q_values(network, obs, self._host_game_ids)

    def legal_next(self, batch: TransitionBatch) -> torch.Tensor:
        return self.legal_table[batch.game_id]

    def act(self, network: torch.nn.Module, obs: torch.Tensor, env_ids: np.ndarray, frames: int) -> np.ndarray:
        """Epsilon-greedy over each game's legal actions (full-set indices)."""
        ids = self.env_game_ids_t[env_ids]

        def greedy() -> torch.Tensor:
            with torch.inference_mode(), self.autocast:
                q_t = q_values(network, obs.to(self.device, non_blocking=True), ids)
            every_env = len(env_ids) == len(self.masks)      # the run loop steps every env, in env order
            masks = self.device_masks if every_env else self.device_masks[torch.from_numpy(env_ids).to(self.device)]
            return masked_argmax(q_t, masks)

        return epsilon_greedy(self.rng, self.epsilon(frames), self.masks[env_ids], greedy)

    def sample(self, replay: ReplayMemory, out: TransitionBatch) -> TransitionBatch:
        clip = self.reward_clip
        if self.per_game_rows is None:
            batch = replay.sample(self.cfg.batch_size, reward_clip=clip, out=out)
        else:
            batch = replay.sample(per_game=self.per_game_rows, reward_clip=clip, out=out)
        self._host_game_ids = batch.game_id     # MCDQN: grouping rows by game needs no device read
        return batch

    def test_epoch(self, epoch: int, frames: int) -> tuple[list[TestRow], dict]:
        cfg = self.cfg
        self.online.eval()
        act = masked_greedy_act(self.online, self.action_masks, self.device,
                                forward=self._test_q_values)
        results = test_epoch_results(act, self.games, cfg, epoch)
        self.online.train()
        summary = {game: {"mean": r.mean, "max": r.max, "episodes": r.episodes} for game, r in results.items()}
        return [TestRow(cfg.variant, r) for r in results.values()], {"epoch": epoch, "games": summary}

    def _test_q_values(self, obs: torch.Tensor, game_ids: torch.Tensor) -> torch.Tensor:
        with self.autocast:
            return q_values(self.online, obs, game_ids)

    def progress_values(self, frames: int, metrics: dict[str, float], output: int) -> dict[str, Any]:
        return {"epsilon": self.epsilon(frames), "loss": metrics["loss"], "q_mean": metrics["q_mean"]}

    def checkpoint(self, output: int) -> tuple[dict, dict]:
        return ({"online": self.online.state_dict(), "target": self.target.state_dict(),
                 "optimizer": self.optimizer.state_dict(), "rng": rng_state(self.rng), "config": self.cfg.to_dict()},
                multitask_meta(self.cfg, self.action_masks))

    def load_checkpoint(self, payload: dict, path: Path) -> None:
        for key, target in (("online", self.online), ("target", self.target), ("optimizer", self.optimizer)):
            restore(target, payload[key], path, key)
        restore_rng(self.rng, payload["rng"])


# -- training ---------------------------------------------------------------------------------------
def train_multitask_dqn(cfg: MultitaskDQNConfig, resume: bool = False) -> dict:
    """Train one MDQN or MCDQN on all of cfg's games; returns the counters, last test results and checkpoint.

    resume=True continues from <cfg.out>/checkpoint.pt when it exists (network, target, optimiser,
    counters, RNG states, and the replay if it was saved; else the replay refills up to learning_starts
    transitions of each game). The envs restart at new episodes.
    """
    games = cfg.game_list
    num_games = len(games)
    run = RunContext.start(cfg, expect={"kind": cfg.variant, "games": games, "architecture": "nature"},
                           resume=resume, num_envs=num_games * cfg.envs_per_game, require=RESUME_KEYS + ("target",))
    with run.make_pool(games, envs_per_game=cfg.envs_per_game) as pool:
        capacity_per_game = cfg.replay_capacity // num_games
        replay = ReplayMemory.for_pool(pool, capacity_per_game, n_step=cfg.n_step, gamma=cfg.gamma,
                                       life_loss_terminal=cfg.life_loss_terminal, seed=cfg.seed + run.segment)
        algo = MultitaskDQN(cfg, np.array(pool.action_masks), pool.game_ids.astype(np.int64), run.device,
                            run.out_dir, replay)
        if run.payload is not None:
            check_actions(run.out_dir, run.payload, algo.checkpoint(0)[1])
            algo.load_checkpoint(run.payload, run.checkpoint_path)
        schedule = make_schedule(cfg, num_games, rows_per_game=math.ceil(cfg.batch_size / num_games),
                                 replay_capacity_per_game=capacity_per_game, update_every_unit="agent_steps")
        loop = RunLoop(run, algo, pool, replay, schedule)
        summary = loop.run()[0]
    summary["recent_return"] = {game: float(np.mean(r)) if r else math.nan
                                for game, r in zip(games, loop.game_returns)}
    return summary
