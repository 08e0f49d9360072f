"""Expert DQN (Mnih et al. 2015) on the C++ pool and replay: the algorithm, top to bottom.

    summary = train_expert(DQNConfig(game="pong", frames_per_game=10_000_000, out="runs/pong"))

What makes it DQN is here: the config, the network, the epsilon-greedy act step, the TD target and loss,
the update and the target sync. The run loop (actormimic_fast/run/) decides when each runs: one
gradient update per ``update_every`` agent steps summed over envs, whatever ``envs_per_game`` is, and test
epochs, progress rows and checkpoints at their frame marks.

The network's outputs index the game's minimal action set; ``legal_actions[i]`` is the full-set action
of output i. Checkpoints record it (``meta["actions"]``) with the game and the architecture. Names follow
DQN Zoo: ``s_tm1, a_tm1, r_t, discount_t, s_t`` for a sampled transition.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from ..files.checkpoint import CHECKPOINT_NAME, RESUME_KEYS, check_actions, load_checkpoint, meta_value, restore
from ..run.evaluation import test_epoch_results
from ..native.games import canonical_name
from ..models.networks import ARCHITECTURES, SeparateNetworks, StackedNetworks, build_network
from ..native.replay import TransitionBatch
from ..run.acting import epsilon_at, epsilon_greedy, masked_argmax
from ..run.context import RunContext
from ..run.loop import RunLoop, RunOutput, TestRow, make_schedule
from ..run.per_game_replays import PerGameReplays
from ..run.compiled import CompiledNetworks
from ..run.precision import make_autocast
from ..run.settings import (ComputeSettings, EnvSettings, EvaluationSettings, OutputSettings, QLearningSettings,
                            setting as _f)
from ..run.state import restore_rng, rng_state
from .shipping import keep_init_logs


# -- settings ---------------------------------------------------------------------------------------
@dataclass
class DQNConfig(OutputSettings, EvaluationSettings, ComputeSettings, QLearningSettings, EnvSettings):
    """Every setting of an expert DQN run; defaults are the faithful preset (SPEC section 1).

    Units: ``frames_per_game`` counts emulator frames, as in the Actor-Mimic paper (one agent step is ``frame_skip``
    = 4 frames); ``learning_starts`` and ``update_every`` count agent steps, ``target_update`` updates.
    DeepMind's Lua code annealed epsilon over 1M *agent steps*: set ``epsilon_decay_frames = 4M`` to match.
    """

    game: str = _f("pong", "game to train on (ale-py ROM id, e.g. pong, space_invaders)")
    frames_per_game: int = _f(10_000_000, "training length in emulator frames (agent steps x frame_skip)", count=True,
                              low=1)
    envs_per_game: int = _f(1, "envs of the game stepped by the pool; updates per agent step stay 1/update_every",
                            low=1)
    architecture: str = _f("nature", "network: nature (Mnih et al. 2015) or large (appendix D)",
                           choices=ARCHITECTURES)
    replay_capacity: int = _f(1_000_000, "replay memory size in transitions", count=True, low=1)
    compile: bool = _f(False, "torch.compile the network calls of the update and the acting pass (CPU and CUDA; "
                              "the one-off compile time is reported on its own as compile_s)")
    init: str = _f("", "start the network from an expert's weights instead of at random: its run folder, "
                       "checkpoint.pt or shipped expert.pt (same game and architecture; any precision). The "
                       "optimiser, counters and schedules start fresh (e.g. --epsilon-start 0.01), so a run whose "
                       "folder was lost goes on from weights committed earlier. Read only when the run starts")
    out: str = _f("runs/expert", "output folder: checkpoints, CSV files, TensorBoard events")

    TOML_TABLE = "expert"
    RENAMED = {"frames": "frames_per_game", "num_envs": "envs_per_game"}    # their names until issue 23
    CHECKPOINT_KINDS = ("expert",)

    def validate(self) -> None:
        super().validate()
        self.need(self.batch_size <= self.replay_capacity, "batch_size", f"<= replay_capacity ({self.replay_capacity})")
        # each env of a game keeps a ring of stack + n_step records in its game's replay (the pool stacks 4 frames)
        ring = 4 + self.n_step
        self.need(self.replay_capacity >= self.envs_per_game * ring, "replay_capacity",
                  f">= {self.envs_per_game * ring} (each of the {self.envs_per_game} envs of a game needs a ring of "
                  f"stack + n_step = {ring} records)")


# -- the pieces of the algorithm (pure functions, tested against hand-computed values) -------------------
def td_target(r_t: torch.Tensor, discount_t: torch.Tensor, q_t_target: torch.Tensor,
              q_t_online: torch.Tensor | None = None, legal_t: torch.Tensor | None = None) -> torch.Tensor:
    """y = r_t + discount_t * Q_target(s_t, a*), a* = argmax of Q_target (DQN) or of Q_online (Double DQN).

    legal_t: bool [B, A], the actions the argmax may choose in s_t (multi-game networks: s_t's game's
    legal actions; every row has at least one). None: every action.
    """
    if legal_t is not None:
        q_t_target = q_t_target.masked_fill(~legal_t, -math.inf)
        if q_t_online is not None:
            q_t_online = q_t_online.masked_fill(~legal_t, -math.inf)
    if q_t_online is None:
        bootstrap = q_t_target.max(dim=1).values
    else:
        bootstrap = q_t_target.gather(1, q_t_online.argmax(dim=1, keepdim=True)).squeeze(1)
    return r_t + discount_t * bootstrap


def td_loss(q_tm1_a: torch.Tensor, y: torch.Tensor, kind: str = "huber", reduction: str = "sum") -> torch.Tensor:
    """Huber (quadratic for |TD error| <= 1, linear beyond: the paper's clipped TD error) or squared error,
    summed or averaged over rows (reduction "none": per row)."""
    if kind == "huber":
        loss = F.huber_loss(q_tm1_a, y, reduction="none", delta=1.0)
    elif kind == "mse":
        loss = 0.5 * (q_tm1_a - y).square()
    else:
        raise ValueError(f"loss must be 'huber' or 'mse', got {kind!r}")
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean()
    if reduction == "none":
        return loss
    raise ValueError(f"loss_reduction must be 'sum' or 'mean', got {reduction!r}")


@torch.no_grad()
def sync_target(online: torch.nn.Module, target: torch.nn.Module) -> None:
    """target <- online (a full copy of the parameters)."""
    torch._foreach_copy_(list(target.parameters()), list(online.parameters()))


# -- the algorithm ----------------------------------------------------------------------------------
class QLearning:
    """Q-learning from a replay, shared by the expert DQN and the multitask DQN baselines: the update
    (TD target, loss, gradient step) and the target sync. Subclasses give the Q-function and the masks.

    ``groups`` > 1: the minibatch holds that many equal groups of rows (experts trained together, one group
    each), and each group's loss is reduced on its own, so every expert gets its own loss's gradient.
    """

    capturable = True     # no host synchronisation, static shapes: the update can be a CUDA graph
    groups = 1
    uses_target = True    # a target network (PQN has none)

    def __init__(self, cfg, online: torch.nn.Module, device: torch.device):
        self.cfg, self.device = cfg, device
        self.online = online.to(device)
        self.target = copy.deepcopy(self.online).requires_grad_(False) if self.uses_target else None
        self.optimizer = cfg.make_optimizer(self.online.parameters(),
                                            capturable=self.capturable and device.type == "cuda")
        self.reward_clip = cfg.reward_clip or None
        self.autocast = make_autocast(cfg.amp, device)

    def q_values(self, network: torch.nn.Module, obs: torch.Tensor, batch: TransitionBatch) -> torch.Tensor:
        return network(obs)

    def legal_next(self, batch: TransitionBatch) -> torch.Tensor | None:
        """The actions the bootstrap may choose in each s_t (None: all of them)."""
        return None

    def update(self, batch: TransitionBatch) -> tuple[torch.Tensor, ...]:
        """One gradient step on a minibatch; returns each group's loss and mean Q(s_tm1, a_tm1) (METRICS)."""
        cfg = self.cfg
        s_tm1, a_tm1, r_t, discount_t, s_t = batch.obs, batch.action, batch.reward, batch.discount, batch.next_obs
        with self.autocast:
            q_tm1 = self.q_values(self.online, s_tm1, batch).float()
            with torch.no_grad():
                q_t_target = self.q_values(self.target, s_t, batch).float()
                q_t_online = self.q_values(self.online, s_t, batch).float() if cfg.double_dqn else None
        q_tm1_a = q_tm1.gather(1, a_tm1.unsqueeze(1)).squeeze(1)
        y = td_target(r_t, discount_t, q_t_target, q_t_online, self.legal_next(batch))
        if self.groups == 1:
            loss = td_loss(q_tm1_a, y, cfg.loss, cfg.loss_reduction)
            metrics = (loss.detach(), q_tm1_a.detach().mean())
        else:
            per_row = td_loss(q_tm1_a, y, cfg.loss, "none").view(self.groups, -1)
            per_group = per_row.sum(1) if cfg.loss_reduction == "sum" else per_row.mean(1)
            loss = per_group.sum()
            metrics = (*per_group.detach().unbind(), *q_tm1_a.detach().view(self.groups, -1).mean(1).unbind())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return metrics

    def after_update(self, updates: int) -> None:
        if updates % self.cfg.target_update == 0:
            sync_target(self.online, self.target)

    def epsilon(self, frames: int) -> float:
        cfg = self.cfg
        return epsilon_at(frames, cfg.epsilon_start, cfg.epsilon_end, cfg.epsilon_decay_frames)

    def summary(self, metrics: dict[str, float], output: int) -> dict:
        return {}


class ExpertDQN(QLearning):
    """One expert DQN per game, each over its game's legal actions, epsilon-greedy.

    Several games train together as they would alone, in one computation: one forward, backward and
    optimiser step for all their networks (on CUDA networks.StackedNetworks, parameters stacked and vmapped;
    on the CPU networks.SeparateNetworks, each network's own tensors and kernels; outputs padded to the
    largest action set and the padding masked out of acting and of the bootstrap), each keeps its own
    exploration stream, replay (run/per_game_replays.py), loss, target network and run folder. One game
    uses its plain network.
    """

    FRAME_COUNTERS = {"frames": "per_game"}

    def __init__(self, cfg: DQNConfig, games: list[str], legal_actions: list[np.ndarray], envs_per_game: int,
                 device: torch.device, replays: PerGameReplays, folders: list[Path], run_info: dict,
                 initial_online: Mapping[str, torch.Tensor] | None = None):
        networks = []
        for legal in legal_actions:
            torch.manual_seed(cfg.seed)                       # each expert starts as it would alone
            network = build_network(cfg.architecture, len(legal))
            if initial_online is not None:
                network.load_state_dict(initial_online)
            networks.append(network)
        if len(games) == 1:
            online = networks[0]
        elif device.type == "cuda":
            online = StackedNetworks(networks)      # one vmapped call, grouped convolutions in one captured graph
            online.vectorized = True
        else:
            # CPU: each expert's own kernels on its own tensors (the run equals the experts trained alone,
            # and no stacked gradients to copy)
            online = SeparateNetworks(networks)
        super().__init__(cfg, online, device)
        self.games, self.legal_actions = games, [np.asarray(legal) for legal in legal_actions]
        self.groups, self.envs_per_game = len(games), envs_per_game
        self.rngs = [np.random.default_rng(cfg.seed) for _ in games]     # each expert's exploration stream
        self.batch_rows = getattr(cfg, "batch_size", 0) * len(games)      # minibatch rows (PQN: none, it takes rollouts)
        columns = max(len(legal) for legal in legal_actions)
        column_masks = np.zeros((len(games), columns), bool)               # an expert's real outputs
        action_table = np.zeros((len(games), columns), np.int64)           # output column -> full-set action
        for g, legal in enumerate(self.legal_actions):
            column_masks[g, : len(legal)] = True
            action_table[g, : len(legal)] = legal
        env_games = np.repeat(np.arange(len(games)), envs_per_game)
        self.masks, self.action_map = column_masks[env_games], action_table[env_games]
        self.device_masks = torch.from_numpy(self.masks).to(device)
        self.column_masks = torch.from_numpy(column_masks).to(device)
        self.METRICS = (("loss", "q_mean") if len(games) == 1 else
                        tuple(f"loss/{g}" for g in games) + tuple(f"q_mean/{g}" for g in games))
        self.configs = [cfg if len(games) == 1 else cfg.replace(game=g, out=str(folder))
                        for g, folder in zip(games, folders)]
        self.run_info = run_info
        self.outputs = [RunOutput(folder, [g], {**run_info, "games": [game], "architecture": cfg.architecture,
                                                "frame_skip": cfg.frame_skip,
                                                "train_epoch_frames": cfg.train_epoch_frames},
                                  game, replays.memories[g] if replays is not None else None)
                        for g, (game, folder) in enumerate(zip(games, folders))]
        self.counters_extra: dict[str, int] = {}
        self.compiled = CompiledNetworks(cfg.compile)

    def summary(self, metrics: dict[str, float], output: int) -> dict:
        return {"compile_s": round(self.compiled.compile_s, 3)} if self.cfg.compile else {}

    # -- the Q-function over the rows of every game --------------------------------------------------------
    def q_rows(self, network: torch.nn.Module, obs: torch.Tensor) -> torch.Tensor:
        """Q-values [n, columns] of rows grouped by game in equal groups (one group: the plain network);
        through torch.compile with --compile."""
        if self.groups == 1:
            return self.compiled(network, obs)
        return self.compiled(network, obs.view(self.groups, -1, *obs.shape[1:])).flatten(0, 1)

    def q_values(self, network: torch.nn.Module, obs: torch.Tensor, batch: TransitionBatch) -> torch.Tensor:
        return self.q_rows(network, obs)

    def legal_next(self, batch: TransitionBatch) -> torch.Tensor | None:
        return None if self.groups == 1 else self.column_masks[batch.game_id]   # padding is never bootstrapped

    # -- acting ---------------------------------------------------------------------------------------
    def act(self, network: torch.nn.Module, obs: torch.Tensor, env_ids: np.ndarray, frames: int) -> np.ndarray:
        """Epsilon-greedy over each game's legal actions (network outputs), every expert from its own stream;
        one forward pass for every env when any of them acts greedily."""
        best: list[torch.Tensor] = []

        def greedy() -> torch.Tensor:
            if not best:
                with torch.inference_mode(), self.autocast:
                    q_t = self.q_rows(network, obs.to(self.device, non_blocking=True))
                best.append(masked_argmax(q_t, self.device_masks).cpu())
            return best[0]

        epsilon, per_game = self.epsilon(frames), self.envs_per_game
        if self.groups == 1:
            return epsilon_greedy(self.rngs[0], epsilon, self.masks, greedy, num_legal=len(self.legal_actions[0]))
        return np.concatenate([
            epsilon_greedy(rng, epsilon, self.masks[g * per_game:(g + 1) * per_game],
                           lambda g=g: greedy()[g * per_game:(g + 1) * per_game], num_legal=len(legal))
            for g, (rng, legal) in enumerate(zip(self.rngs, self.legal_actions))])

    # -- learning -----------------------------------------------------------------------------------
    def sample(self, replay: PerGameReplays, out: TransitionBatch) -> TransitionBatch:
        return replay.sample(self.cfg.batch_size, reward_clip=self.reward_clip, out=out)

    # -- testing ------------------------------------------------------------------------------------
    def test_epoch(self, epoch: int, frames: int) -> tuple[list[TestRow], dict]:
        """Every expert on its game, in one pool (each game's result is the one it would get alone)."""
        cfg = self.cfg
        self.online.eval()
        table = torch.from_numpy(self.action_map[:: self.envs_per_game])            # [games, columns]
        masks = self.column_masks.repeat_interleave(cfg.test_envs, 0)

        @torch.no_grad()
        def act(obs: torch.Tensor, game_ids: torch.Tensor) -> np.ndarray:
            with self.autocast:
                q = self.q_rows(self.online, obs.to(self.device, non_blocking=True))
            return table[game_ids, masked_argmax(q, masks).cpu()].numpy()

        results = test_epoch_results(act, self.games, cfg, epoch)
        self.online.train()
        rows = [TestRow("dqn", results[game]) for game in self.games]
        summary = {game: {"epoch": epoch, "mean": r.mean, "max": r.max, "episodes": r.episodes}
                   for game, r in results.items()}
        return rows, summary[self.games[0]] if self.groups == 1 else {"epoch": epoch, "games": summary}

    def progress_values(self, frames: int, metrics: dict[str, float], output: int) -> dict[str, Any]:
        suffix = "" if self.groups == 1 else f"/{self.games[output]}"
        return {"epsilon": self.epsilon(frames), "loss": metrics["loss" + suffix],
                "q_mean": metrics["q_mean" + suffix]}

    # -- checkpoints: each game's folder holds a plain expert's checkpoint ------------------------------
    def checkpoint(self, output: int) -> tuple[dict, dict]:
        g, cfg = output, self.configs[output]
        meta = {**expert_meta(cfg, self.legal_actions[g]), "run": self.run_info}
        networks = {"online": self.online, "target": self.target} if self.uses_target else {"online": self.online}
        if self.groups == 1:
            state = {key: network.state_dict() for key, network in networks.items()}
            state["optimizer"] = self.optimizer.state_dict()
        else:
            actions = len(self.legal_actions[g])
            state = {key: network.network_state(g, actions) for key, network in networks.items()}
            state["optimizer"] = self.online.network_optimizer_state(self.optimizer.state_dict(), g, actions)
        return {**state, "rng": rng_state(self.rngs[g]), "config": cfg.to_dict()}, meta

    def load_checkpoints(self, payloads: list[dict], paths: list[Path]) -> None:
        """Each game's resumed checkpoint into its slot (any mix of games trained alone or together)."""
        networks = (("online", self.online), ("target", self.target)) if self.uses_target else (("online", self.online),)
        if self.groups == 1:
            for key, target in (*networks, ("optimizer", self.optimizer)):
                restore(target, payloads[0][key], paths[0], key)
        else:
            for g, (payload, path) in enumerate(zip(payloads, paths)):
                for key, network in networks:
                    restore(_Slot(network, g), payload[key], path, key)
            restore(self.optimizer, self.online.joint_optimizer_state([p["optimizer"] for p in payloads]),
                    ", ".join(map(str, paths)), "optimizer")
        for rng, payload in zip(self.rngs, payloads):
            restore_rng(rng, payload["rng"])


class _Slot:
    """Network k of a StackedNetworks / SeparateNetworks, as something with load_state_dict (for
    checkpoint.restore)."""

    def __init__(self, networks: StackedNetworks | SeparateNetworks, k: int):
        self.networks, self.k = networks, k

    def load_state_dict(self, state: dict) -> None:
        self.networks.load_network_state(self.k, state)


def expert_meta(cfg: DQNConfig, legal_actions) -> dict:
    """What a checkpoint's weights are for; load_checkpoint(expect=...) compares these keys."""
    return {"kind": "expert", "game": canonical_name(cfg.game), "actions": [int(a) for a in legal_actions],
            "architecture": cfg.architecture, "num_actions": len(legal_actions)}


def load_expert(path: str | os.PathLike, game: str | None = None, architecture: str | None = None,
                device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """An expert's online network (eval mode) and its meta; ValueError if it is not for game/architecture."""
    expect = {"kind": "expert"}
    if game is not None:
        expect["game"] = canonical_name(game)
    if architecture is not None:
        expect["architecture"] = architecture
    payload = load_checkpoint(path, expect=expect, map_location=device, require=("online",))
    meta = payload["meta"]
    network = build_network(meta_value(path, meta, "architecture"), meta_value(path, meta, "num_actions")).to(device)
    restore(network, payload["online"], path, "online")
    return network.eval(), meta


# -- training ---------------------------------------------------------------------------------------
def train_expert(cfg: DQNConfig, resume: bool = False, *, initial_online: Mapping[str, torch.Tensor] | None = None,
                 run_info: Mapping[str, Any] | None = None) -> dict:
    """Train one expert DQN as cfg says; returns the final counters, last test result and checkpoint path.

    resume=True continues from <cfg.out>/checkpoint.pt when it exists (network, target, optimiser,
    counters, RNG states, and the replay if it was saved; else the replay refills up to learning_starts).
    The envs restart at new episodes: an emulator's state is not part of a checkpoint.

    initial_online: a state_dict for the online network (transfer: weights from an AMN), loaded only when
        the run starts fresh, never over a resumed checkpoint; the target network starts equal to it.
    run_info: how the run started, for run.json and the report, e.g. {"kind": "transfer", "init":
        "amn-policy", ...} (default {"kind": "expert"}). The checkpoint keeps it (meta["run"]) and a resumed
        run must bring the same, so a transfer run cannot be continued as something else.
    """
    game = canonical_name(cfg.game)
    if initial_online is None and run_info is None:      # a plain expert (transfer brings its own init)
        initial_online = expert_init(cfg, game, resume)
    return _train([game], cfg, [Path(cfg.out)], resume, initial_online, run_info)[0]


def train_experts(cfg: DQNConfig, games: list[str], resume: bool = False) -> dict[str, dict]:
    """Train one expert per game, all together in one pool and one stacked update (cfg.game is ignored);
    each game's run folder is <cfg.out>/<game> and holds what train_expert would write there. Returns
    {game: summary}. Every expert is what train_expert(cfg with that game) trains: same initial weights,
    exploration stream, replay seed and schedules (equal up to floating-point rounding in lockstep mode)."""
    games = games_trained_together(cfg, games)
    folders = [Path(cfg.out) / game for game in games]
    summaries = _train(games, cfg, folders, resume, None, None)
    return dict(zip(games, summaries))


def games_trained_together(cfg, games: list[str]) -> list[str]:
    """The canonical names of the games whose experts train together (DQN or PQN); ValueError unless they
    are distinct and cfg.init is empty (it names one game's expert)."""
    games = [canonical_name(g) for g in games]
    if len(set(games)) != len(games):
        raise ValueError(f"games must be distinct, got {games}")
    if cfg.init:
        raise ValueError(f"init must be empty when experts train together (it names one game's expert), "
                         f"got {cfg.init!r}")
    return games


def expert_init(cfg, game: str, resume: bool) -> dict[str, torch.Tensor] | None:
    """The online weights cfg.init names (an expert of `game` and cfg.architecture), for a run that starts
    fresh; None when cfg.init is empty or the run resumes a checkpoint (its own weights win). When cfg.init
    is a shipped expert's folder, its records and logs are kept in <cfg.out>/init/ (keep_init_logs), so that
    ship-expert can count the frames and hours that made those weights after the folder itself is gone."""
    if not cfg.init or (resume and (Path(cfg.out) / CHECKPOINT_NAME).exists()):
        return None
    path = Path(cfg.init).expanduser()
    if path.is_dir():
        found = [path / name for name in ("expert.pt", CHECKPOINT_NAME) if (path / name).exists()]
        if not found:
            raise ValueError(f"init must be an expert checkpoint or a folder holding expert.pt or "
                             f"{CHECKPOINT_NAME}, got {cfg.init!r} (a folder with neither)")
        path = found[0]
    elif not path.exists():
        raise ValueError(f"init must be an expert checkpoint or a folder holding one, got {cfg.init!r} (no such file)")
    try:
        network, _ = load_expert(path, game=game, architecture=cfg.architecture)
    except ValueError as exc:
        raise ValueError(f"init={cfg.init!r}: {exc}") from exc
    keep_init_logs(path.parent, Path(cfg.out))
    return {key: value.float() for key, value in network.state_dict().items()}


def check_run_info(run: RunContext, run_info: Mapping[str, Any]) -> None:
    """ValueError unless every resumed checkpoint of run was started as run_info says (kind, algorithm, init):
    a transfer run cannot be continued as an expert, nor a PQN expert as a DQN one."""
    for folder, payload in zip(run.folders, run.payloads or []):
        started_as = payload["meta"].get("run", {"kind": "expert"})   # checkpoints older than meta["run"]
        if started_as != run_info:
            raise ValueError(f"checkpoint {str(folder / CHECKPOINT_NAME)!r} was made for run={started_as!r}, "
                             f"not run={dict(run_info)!r}")


def _train(games: list[str], cfg: DQNConfig, folders: list[Path], resume: bool,
           initial_online: Mapping[str, torch.Tensor] | None, run_info: Mapping[str, Any] | None) -> list[dict]:
    run_info = dict(run_info) if run_info is not None else {"kind": "expert"}
    expects = [{"kind": "expert", "game": game, "architecture": cfg.architecture} for game in games]
    run = RunContext.start(cfg, expect=expects, resume=resume, num_envs=cfg.envs_per_game * len(games),
                           folders=folders, require=RESUME_KEYS)
    check_run_info(run, run_info)              # before the target network: a PQN expert has none
    for folder, payload in zip(folders, run.payloads or []):
        if "target" not in payload:
            raise ValueError(f"checkpoint {str(folder / CHECKPOINT_NAME)!r} has no 'target' network to resume")
    with run.make_pool(games, envs_per_game=cfg.envs_per_game) as pool:
        legal_actions = [pool.legal_actions(g) for g in range(len(games))]   # output i -> full action legal[i]
        replays = PerGameReplays(pool, cfg.replay_capacity, [cfg.seed + run.segment] * len(games), n_step=cfg.n_step,
                                 gamma=cfg.gamma, life_loss_terminal=cfg.life_loss_terminal)
        algo = ExpertDQN(cfg, games, legal_actions, cfg.envs_per_game, run.device, replays, folders, run_info,
                         initial_online if run.payloads is None else None)
        if run.payloads is not None:
            for o, payload in enumerate(run.payloads):
                check_actions(run.folders[o], payload, algo.checkpoint(o)[1])
            algo.load_checkpoints(run.payloads, [f / CHECKPOINT_NAME for f in run.folders])
        schedule = make_schedule(cfg, len(games), rows_per_game=cfg.batch_size,
                                 replay_capacity_per_game=cfg.replay_capacity)
        return RunLoop(run, algo, pool, replays, schedule).run()
