"""Expert DQN (Mnih et al. 2015) on the C++ pool and replay: the algorithm, top to bottom.

    summary = train_expert(DQNConfig(game="pong", frames=10_000_000, out="runs/pong"))

What makes it DQN is here: the config, the network, the epsilon-greedy act step, the TD target and loss,
the update and the target sync. The run loop (actormimic_fast/run/) decides when each runs: one
gradient update per ``update_every`` agent steps summed over envs, whatever ``num_envs`` is, and test
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
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint import load_checkpoint
from ..evaluation import evaluate, greedy_act
from ..games import canonical_name
from ..networks import ARCHITECTURES, build_network
from ..optim import make_optimizer
from ..replay import ReplayMemory, TransitionBatch
from ..run.acting import epsilon_at, epsilon_greedy, masked_argmax
from ..run.context import RunContext
from ..run.loop import RunLoop, Schedule, TestRow, test_seed
from ..run.settings import (ComputeSettings, EnvSettings, EvaluationSettings, OutputSettings, QLearningSettings,
                            setting as _f)
from ..run.state import restore_rng, rng_state


# -- settings ---------------------------------------------------------------------------------------
@dataclass
class DQNConfig(OutputSettings, EvaluationSettings, ComputeSettings, QLearningSettings, EnvSettings):
    """Every setting of an expert DQN run; defaults are the faithful preset (SPEC section 1).

    Units: ``frames`` are emulator frames, as in the Actor-Mimic paper (one agent step is ``frame_skip``
    = 4 frames); ``learning_starts`` and ``update_every`` count agent steps, ``target_update`` updates.
    DeepMind's Lua code annealed epsilon over 1M *agent steps*: set ``epsilon_decay_frames = 4M`` to match.
    """

    game: str = _f("pong", "game to train on (ale-py ROM id, e.g. pong, space_invaders)")
    frames: int = _f(10_000_000, "training length in emulator frames (agent steps x frame_skip)", count=True, low=1)
    num_envs: int = _f(1, "envs of the game stepped by the pool; updates per agent step stay 1/update_every", low=1)
    architecture: str = _f("nature", "network: nature (Mnih et al. 2015) or large (appendix D)",
                           choices=ARCHITECTURES)
    replay_capacity: int = _f(1_000_000, "replay memory size in transitions", count=True, low=1)
    out: str = _f("runs/expert", "output folder: checkpoints, CSV files, TensorBoard events")

    TOML_TABLE = "expert"

    def validate(self) -> None:
        super().validate()
        self.need(self.batch_size <= self.replay_capacity, "batch_size", f"<= replay_capacity ({self.replay_capacity})")


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
    """Huber (quadratic for |TD error| <= 1, linear beyond: the paper's clipped TD error) or squared error."""
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
    raise ValueError(f"loss_reduction must be 'sum' or 'mean', got {reduction!r}")


@torch.no_grad()
def sync_target(online: torch.nn.Module, target: torch.nn.Module) -> None:
    """target <- online (a full copy of the parameters)."""
    torch._foreach_copy_(list(target.parameters()), list(online.parameters()))


# -- the algorithm ----------------------------------------------------------------------------------
class QLearning:
    """Q-learning from a replay, shared by the expert DQN and the multitask DQN baselines: the update
    (TD target, loss, gradient step) and the target sync. Subclasses give the Q-function and the masks."""

    METRICS = ("loss", "q_mean")
    capturable = True     # no host synchronisation, static shapes: the update can be a CUDA graph

    def __init__(self, cfg, online: torch.nn.Module, device: torch.device):
        self.cfg, self.device = cfg, device
        self.online = online.to(device)
        self.target = copy.deepcopy(self.online).requires_grad_(False)
        self.optimizer = make_optimizer(cfg.optimizer, self.online.parameters(), lr=cfg.lr,
                                        rmsprop_momentum=cfg.rmsprop_momentum, rmsprop_eps=cfg.rmsprop_eps,
                                        adam_eps=cfg.adam_eps, capturable=device.type == "cuda")
        self.rng = np.random.default_rng(cfg.seed)
        self.reward_clip = cfg.reward_clip or None
        # no weight cache: a cached cast would outlive the weights it was made from in a replayed graph
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp, cache_enabled=False)

    def q_values(self, network: torch.nn.Module, obs: torch.Tensor, batch: TransitionBatch) -> torch.Tensor:
        return network(obs)

    def legal_next(self, batch: TransitionBatch) -> torch.Tensor | None:
        """The actions the bootstrap may choose in each s_t (None: all of them)."""
        return None

    def update(self, batch: TransitionBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """One gradient step on a minibatch; returns (loss, mean Q(s_tm1, a_tm1)) as device scalars."""
        cfg = self.cfg
        s_tm1, a_tm1, r_t, discount_t, s_t = batch.obs, batch.action, batch.reward, batch.discount, batch.next_obs
        with self.autocast:
            q_tm1 = self.q_values(self.online, s_tm1, batch).float()
            with torch.no_grad():
                q_t_target = self.q_values(self.target, s_t, batch).float()
                q_t_online = self.q_values(self.online, s_t, batch).float() if cfg.double_dqn else None
        q_tm1_a = q_tm1.gather(1, a_tm1.unsqueeze(1)).squeeze(1)
        y = td_target(r_t, discount_t, q_t_target, q_t_online, self.legal_next(batch))
        loss = td_loss(q_tm1_a, y, cfg.loss, cfg.loss_reduction)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach(), q_tm1_a.detach().mean()

    def after_update(self, updates: int) -> None:
        if updates % self.cfg.target_update == 0:
            sync_target(self.online, self.target)

    def epsilon(self, frames: int) -> float:
        cfg = self.cfg
        return epsilon_at(frames, cfg.epsilon_start, cfg.epsilon_end, cfg.epsilon_decay_frames)

    def progress_values(self, frames: int, metrics: dict[str, float]) -> dict[str, Any]:
        return {"epsilon": self.epsilon(frames), "loss": metrics["loss"], "q_mean": metrics["q_mean"]}

    def state_dict(self) -> dict:
        return {"online": self.online.state_dict(), "target": self.target.state_dict(),
                "optimizer": self.optimizer.state_dict(), "rng": rng_state(self.rng)}

    def load_state_dict(self, payload: dict) -> None:
        self.online.load_state_dict(payload["online"])
        self.target.load_state_dict(payload["target"])
        self.optimizer.load_state_dict(payload["optimizer"])
        restore_rng(self.rng, payload["rng"])

    def summary(self, metrics: dict[str, float]) -> dict:
        return {}


class ExpertDQN(QLearning):
    """One game's DQN: outputs over the game's legal actions (so no masks), epsilon-greedy acting."""

    FRAME_COUNTERS = {"frames": "per_game"}

    def __init__(self, cfg: DQNConfig, legal_actions: np.ndarray, num_envs: int, device: torch.device,
                 run_info: dict, initial_online: Mapping[str, torch.Tensor] | None = None):
        torch.manual_seed(cfg.seed)
        online = build_network(cfg.architecture, len(legal_actions))
        if initial_online is not None:
            online.load_state_dict(initial_online)
        super().__init__(cfg, online, device)
        self.game = canonical_name(cfg.game)
        self.legal_actions = np.asarray(legal_actions)
        self.batch_rows = cfg.batch_size
        self.action_map = np.tile(self.legal_actions, (num_envs, 1))          # column i -> full action legal[i]
        self.masks = np.ones((num_envs, len(legal_actions)), bool)            # every output is a legal action
        self.device_masks = torch.from_numpy(self.masks).to(device)
        self.meta = {**expert_meta(cfg, legal_actions), "run": run_info}
        self.run_info = {**run_info, "games": [self.game], "architecture": cfg.architecture,
                         "frame_skip": cfg.frame_skip, "train_epoch_frames": cfg.train_epoch_frames}
        self.description = self.game
        self.counters_extra: dict[str, int] = {}

    def act(self, network: torch.nn.Module, obs: torch.Tensor, env_ids: np.ndarray, frames: int) -> np.ndarray:
        """Epsilon-greedy over the minimal action set (network outputs)."""
        def greedy() -> torch.Tensor:
            with torch.inference_mode(), self.autocast:
                q_t = network(obs.to(self.device, non_blocking=True))
            return masked_argmax(q_t, self.device_masks[: len(env_ids)])

        return epsilon_greedy(self.rng, self.epsilon(frames), self.masks[env_ids], greedy)

    def sample(self, replay: ReplayMemory, out: TransitionBatch) -> TransitionBatch:
        return replay.sample(self.cfg.batch_size, reward_clip=self.reward_clip, out=out)

    def test_epoch(self, epoch: int, frames: int) -> tuple[list[TestRow], dict]:
        cfg = self.cfg
        self.online.eval()
        result = evaluate(greedy_act(self.online, self.legal_actions, self.device), [cfg.game],
                          frames_per_game=cfg.test_epoch_frames, epsilon=cfg.test_epsilon,
                          envs_per_game=cfg.test_envs, seed=test_seed(cfg.seed, epoch), noop_max=cfg.noop_max,
                          frame_skip=cfg.frame_skip, max_episode_frames=cfg.max_episode_frames)[self.game]
        self.online.train()
        return [TestRow("dqn", result)], {"epoch": epoch, "mean": result.mean, "max": result.max,
                                          "episodes": result.episodes}


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
    payload = load_checkpoint(path, expect=expect, map_location=device)
    meta = payload["meta"]
    network = build_network(meta["architecture"], meta["num_actions"]).to(device)
    network.load_state_dict(payload["online"])
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
    run_info = dict(run_info) if run_info is not None else {"kind": "expert"}
    game = canonical_name(cfg.game)
    run = RunContext.start(cfg, expect={"kind": "expert", "game": game, "architecture": cfg.architecture},
                           resume=resume, num_envs=cfg.num_envs)
    if run.payload is not None:
        started_as = run.payload["meta"].get("run", {"kind": "expert"})   # checkpoints older than meta["run"]
        if started_as != run_info:
            raise ValueError(f"checkpoint {str(run.checkpoint_path)!r} was made for run={started_as!r}, "
                             f"not run={run_info!r}")
    with run.make_pool([cfg.game], envs_per_game=cfg.num_envs) as pool:
        legal_actions = pool.legal_actions(0)            # network output i -> full-set action legal_actions[i]
        replay = ReplayMemory.for_pool(pool, cfg.replay_capacity, n_step=cfg.n_step, gamma=cfg.gamma,
                                       life_loss_terminal=cfg.life_loss_terminal, seed=cfg.seed + run.segment)
        algo = ExpertDQN(cfg, legal_actions, pool.num_envs, run.device, run_info,
                         initial_online if run.payload is None else None)
        if run.payload is not None:
            check_actions(run, algo.meta)
            algo.load_state_dict(run.payload)
        schedule = Schedule(frames_per_game=cfg.frames, frame_skip=cfg.frame_skip, num_games=1,
                            learning_starts=cfg.learning_starts, agent_steps_per_update=cfg.update_every,
                            rows_per_game=cfg.batch_size,
                            refill_transitions=min(cfg.learning_starts, cfg.replay_capacity),
                            train_epoch_frames=cfg.train_epoch_frames, test_epoch_frames=cfg.test_epoch_frames,
                            log_every=cfg.log_every, checkpoint_every=cfg.checkpoint_every)
        return RunLoop(run, algo, pool, replay, schedule).run()


def check_actions(run: RunContext, meta: dict) -> None:
    """A resumed checkpoint must be for the action sets the pool has now."""
    saved = run.payload["meta"]["actions"]
    if saved != meta["actions"]:
        raise ValueError(f"checkpoint {str(run.checkpoint_path)!r} has actions {saved}, "
                         f"the games' legal actions are {meta['actions']}")
