"""Actor-Mimic multitask distillation (Parisotto et al. 2016, section 3) on the C++ pool and replay.

    summary = distill(DistillConfig(experts="runs/pong/checkpoint.pt,runs/boxing/checkpoint.pt", out="runs/amn"))

One Actor-Mimic Network (AMN, 18 outputs) learns every game's expert DQN at once:

    L = sum over the minibatch of  L_policy(s) + beta * L_feature(s)                          (eq. 6)
    L_policy(s)  = - sum_{a in A_i} softmax(Q_Ei(s) / tau)_a log softmax_{A_i}(AMN(s))_a      (eq. 4)
    L_feature(s) = || f_i(h_AMN(s)) - h_Ei(s) ||^2, f_i a linear head per game               (eq. 5)

where A_i is game i's legal action set (columns outside it are masked out of both softmaxes by the
fused op ``ops.masked_softmax_xent``) and h is a network's pre-output features. ``loss_reduction`` sums
(default, as the authors' code back-propagates every sample's gradient unscaled) or averages over rows.

The run loop (actormimic_fast/run/) steps every env of the pool once per step (the authors' lockstep
loop, one env per game by default); the AMN (or the expert, ``actor``) acts epsilon-greedily over each
game's legal actions; every ``update_every`` steps an update draws ``per_game`` rows of every game.

The experts' forward passes are one call whatever the number of games (``ExpertEnsemble``: their
parameters stacked, ``torch.vmap`` over the per-game groups of the minibatch, so the convolutions run as
grouped convolutions). Each expert's head is padded to the 18-action set (output j of the expert plays
full-set action ``legal[j]``; the other columns are 0 and masked), so teacher and student share columns.

Under torchrun every process steps all games with its own seeds, samples its own minibatch, and
DistributedDataParallel averages the gradients; process 0 alone tests, logs and writes checkpoints.
"""

from __future__ import annotations

import copy
import datetime
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..native import ops
from ..files.checkpoint import RESUME_KEYS, check_actions, load_checkpoint, meta_value, restore
from ..run.evaluation import test_epoch_results
from ..run.precision import make_autocast
from ..native.games import NUM_ACTIONS, canonical_name
from ..models.networks import ARCHITECTURES, StackedNetworks, build_network, scale_frames
from ..native.replay import ReplayMemory, TransitionBatch
from ..run.acting import epsilon_greedy, masked_argmax
from ..run.context import RunContext
from ..run.loop import RunLoop, RunOutput, TestRow, make_schedule
from ..run.settings import (ComputeSettings, EnvSettings, EvaluationSettings, GameList, OptimizerSettings,
                            OutputSettings, setting as _f, split_names)
from ..run.state import restore_rng, rng_state
from .dqn import load_expert


# -- settings ---------------------------------------------------------------------------------------
@dataclass
class DistillConfig(GameList, OutputSettings, EvaluationSettings, ComputeSettings, OptimizerSettings, EnvSettings):
    """Every setting of an Actor-Mimic run; defaults follow the paper (SPEC section 2; values of the authors'
    code noted).

    Units. Frame counts are emulator frames *per game*, summed over every process under torchrun: the
    paper's "25 million frames per source game" is ``frames_per_game = 25M``. ``learning_starts`` and
    ``update_every`` count *steps*: one step plays one agent step in every env of the pool (the authors'
    lockstep loop, one env per game); with ``envs_per_game = E`` a step is E agent steps per game and earns
    E / update_every updates, so the updates per agent step of a game stay ``1 / update_every``.
    """

    experts: str = _f("", "expert checkpoints (from train-expert), comma-separated, one per game; the games "
                          "and their order come from the checkpoints", names=True)
    games: str = _f("", "optional comma-separated game list; if given it must name exactly the experts' games",
                    names=True)
    architecture: str = _f("nature", "AMN network: nature (the experts', multitask section 5.1) or large "
                           "(appendix D, for transfer)", choices=ARCHITECTURES)
    frames_per_game: int = _f(25_000_000, "training length in emulator frames per game (Table 1: 100 epochs = "
                              "25M; the transfer AMNs: 4M)", count=True, low=1)
    envs_per_game: int = _f(1, "envs of each game in the pool (the authors' code: 1, all games in lockstep)", low=1)
    # -- Actor-Mimic objective -------------------------------------------------------------------
    tau: float = _f(1.0, "softmax temperature of the expert policy softmax(Q / tau)", above=0)
    beta: float = _f(0.0, "feature-regression weight (eq. 6): 0 for multitask (AMN-policy), 0.01 for AMN-feature",
                     low=0)
    loss_reduction: str = _f("sum", "sum over the minibatch (the authors' code backpropagates every sample's "
                             "gradient unscaled) or mean", choices=("sum", "mean"))
    actor: str = _f("amn", "who plays while training: amn (the paper's choice) or expert", choices=("amn", "expert"))
    epsilon: float = _f(0.1, "constant exploration epsilon, random actions over the game's legal set", low=0, high=1)
    # -- replay and learning ----------------------------------------------------------------------
    replay_capacity: int = _f(100_000, "replay memory per game, in transitions", count=True, low=1)
    per_game: int = _f(8, "minibatch rows per game (a minibatch holds per_game x games rows)", low=1)
    update_every: int = _f(4, "steps per gradient update (a step = every env stepped once)", low=1)
    learning_starts: int = _f(10_000, "steps before the first update", count=True, low=0)
    optimizer: str = OptimizerSettings.with_default("optimizer", "adam")     # the paper: torch.optim.Adam
    adam_eps: float = OptimizerSettings.with_default("adam_eps", 1e-8)       # torch's default
    test_experts: bool = _f(True, "also test every expert once (first test epoch, same budget): test.csv rows "
                            "with policy=expert")
    out: str = _f("runs/amn", "output folder: checkpoint.pt, CSV files, run.json, TensorBoard events")

    TOML_TABLE = "distill"
    CHECKPOINT_KINDS = ("amn",)
    PER_GAME = " per game"

    @property
    def expert_paths(self) -> list[str]:
        return split_names(self.experts)

    def validate(self) -> None:
        super().validate()
        self.need(self.per_game <= self.replay_capacity, "per_game", f"<= replay_capacity ({self.replay_capacity})")


# -- experts --------------------------------------------------------------------------------------
@dataclass
class Experts:
    """The experts of a run, loaded once: games in the checkpoints' order, networks (eval mode), metas."""

    paths: list[str]
    games: list[str]
    networks: list[nn.Module]
    metas: list[dict]


def load_experts(paths: list[str], games: list[str] | None = None, device: str | torch.device = "cpu") -> Experts:
    """Load one expert per path.

    Raises FileNotFoundError for a missing file and ValueError for a file that is not an expert, two
    experts of one game, experts of different architectures (they are batched into one call), or a
    ``games`` list that does not name exactly the experts' games.
    """
    if not paths:
        raise ValueError(f"experts must name one expert checkpoint per game, got {paths!r}")
    loaded = [load_expert(path, device=device) for path in paths]
    networks, metas = [network for network, _ in loaded], [meta for _, meta in loaded]
    found = [meta["game"] for meta in metas]
    if len(set(found)) != len(found):
        repeated = sorted({g for g in found if found.count(g) > 1})
        raise ValueError(f"experts must be for different games, got {repeated} more than once in {paths}")
    if games:
        wanted = [canonical_name(g) for g in games]
        if sorted(wanted) != sorted(found):
            raise ValueError(f"games {wanted} do not match the experts' games {found} (experts {paths})")
    architectures = {meta["game"]: meta["architecture"] for meta in metas}
    if len(set(architectures.values())) != 1:
        raise ValueError(f"experts must share one architecture (their passes are batched), got {architectures}")
    return Experts(list(paths), found, networks, metas)


class _FullActionExpert(nn.Module):
    """An expert whose head has one row per full-set action: row legal[j] = the expert's output j, others 0."""

    def __init__(self, expert: nn.Module, legal_actions, num_actions: int = NUM_ACTIONS):
        super().__init__()
        self.trunk = copy.deepcopy(expert.trunk)
        self.head = nn.Linear(expert.head.in_features, num_actions)
        legal = torch.as_tensor(np.asarray(legal_actions), dtype=torch.int64, device=expert.head.weight.device)
        with torch.no_grad():
            self.head.to(expert.head.weight.device)
            self.head.weight.zero_()
            self.head.bias.zero_()
            self.head.weight[legal] = expert.head.weight
            self.head.bias[legal] = expert.head.bias

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(Q-values over the 18 actions [B, 18], pre-output features h(s) [B, D])."""
        h = self.trunk(scale_frames(obs))
        return self.head(h), h


class ExpertEnsemble:
    """Every game's expert evaluated as one stacked network over per-game groups of states
    (networks.StackedNetworks: one vmapped call of grouped convolutions on CUDA, each expert's own kernels on
    the CPU, where that is faster).

    ensemble(obs) with obs [G, n, stack, 84, 84] (group g holds states of game g) returns teacher Q-values
    [G, n, 18] (illegal columns 0) and expert features [G, n, D]. The experts are frozen.
    """

    def __init__(self, experts: list[nn.Module], legal_actions: list, num_actions: int = NUM_ACTIONS):
        if len(experts) != len(legal_actions):
            raise ValueError(f"one action set per expert: got {len(experts)} experts and "
                             f"{len(legal_actions)} action sets")
        padded = [_FullActionExpert(e, legal, num_actions) for e, legal in zip(experts, legal_actions)]
        self.stacked = StackedNetworks(padded).requires_grad_(False)
        self.stacked.vectorized = padded[0].head.weight.is_cuda
        self.num_games = len(experts)
        self.feature_dim = padded[0].head.in_features

    @torch.no_grad()
    def __call__(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if obs.dim() != 5 or obs.shape[0] != self.num_games:
            raise ValueError(f"obs must be [games={self.num_games}, n, stack, 84, 84], got {tuple(obs.shape)}")
        return self.stacked(obs)


# -- the student and the loss ------------------------------------------------------------------------
class Student(nn.Module):
    """The AMN and, for feature regression, one linear head per game mapping h_AMN to that expert's h.

    forward(obs) takes minibatch rows grouped by game (replay.sample(per_game=...)'s layout: equal groups
    in game order) and returns the AMN's logits [B, 18] and the heads' predictions [B, D_expert] (None
    without heads). One module so that DistributedDataParallel averages the heads' gradients too.
    """

    def __init__(self, amn: nn.Module, games: list[str], expert_feature_dim: int, feature_regression: bool):
        super().__init__()
        self.amn = amn
        self.games = list(games)
        self.feature_heads = nn.ModuleDict(
            {g: nn.Linear(amn.feature_dim, expert_feature_dim) for g in games} if feature_regression else {})

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.amn.features(obs)
        logits = self.amn.head(h)
        if not self.feature_heads:
            return logits, None
        groups = h.view(len(self.games), -1, h.shape[1])
        predicted = torch.cat([self.feature_heads[g](group) for g, group in zip(self.games, groups)])
        return logits, predicted


def actor_mimic_loss(student_logits: torch.Tensor, teacher_q: torch.Tensor, action_masks: torch.Tensor,
                     game_id: torch.Tensor, tau: float, reduction: str = "sum",
                     predicted_features: torch.Tensor | None = None, expert_features: torch.Tensor | None = None,
                     beta: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(L_policy + beta * L_feature, L_policy, L_feature), each reduced over rows by sum or mean.

    action_masks: bool [G, 18] per-game legal actions; game_id: int64 [B]. L_feature is 0 without heads.
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    policy = ops.masked_softmax_xent(student_logits.float(), teacher_q.float(), action_masks, tau=tau,
                                     game_id=game_id, reduction=reduction)
    if predicted_features is None or beta == 0:
        feature = policy.new_zeros(())
        return policy, policy, feature
    per_row = (predicted_features.float() - expert_features.float()).square().sum(1)
    feature = per_row.sum() if reduction == "sum" else per_row.mean()
    return policy + beta * feature, policy, feature


def load_amn(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """An AMN checkpoint's network (18 outputs, eval mode) and its meta; ValueError naming the file otherwise."""
    payload = load_checkpoint(path, expect={"kind": "amn"}, map_location=device, require=("online",))
    meta = payload["meta"]
    network = build_network(meta_value(path, meta, "architecture"), meta_value(path, meta, "num_actions"))
    restore(network, payload["online"], path, "online")
    return network.to(device).eval(), meta


def amn_meta(games: list[str], legal_actions: list, architecture: str, beta: float) -> dict:
    """What an AMN checkpoint holds (the transfer command relies on these keys)."""
    return {"kind": "amn", "games": list(games), "actions": [[int(a) for a in legal] for legal in legal_actions],
            "architecture": architecture, "num_actions": NUM_ACTIONS, "beta": float(beta)}


# -- the algorithm ----------------------------------------------------------------------------------
class ActorMimic:
    """The AMN learning every expert's policy (and features) from the replay; the AMN or the experts act."""

    METRICS = ("policy_loss", "feature_loss")
    FRAME_COUNTERS = {"steps": "steps", "frames": "per_game"}

    def __init__(self, cfg: DistillConfig, experts: Experts, legal_actions: list, env_game_ids: np.ndarray,
                 run: RunContext, replay: ReplayMemory):
        games, device = experts.games, run.device
        self.cfg, self.games, self.device = cfg, games, device
        self.num_games = len(games)
        self.teacher = ExpertEnsemble([e.to(device) for e in experts.networks], legal_actions)
        # bool [G, 18], checked once here: the fused op itself reads nothing back (a legal-less row is NaN)
        self.action_masks = ops.check_action_masks(torch.from_numpy(action_masks(legal_actions)).to(device))
        self.masks = action_masks(legal_actions)[env_game_ids]                             # bool [num_envs, 18]
        self.device_masks = torch.from_numpy(self.masks).to(device)
        self.action_map = np.tile(np.arange(NUM_ACTIONS), (len(env_game_ids), 1))   # columns are full actions
        torch.manual_seed(cfg.seed)   # same initial weights on every process (DDP broadcasts them anyway)
        self.amn = build_network(cfg.architecture, NUM_ACTIONS)
        self.student = Student(self.amn, games, self.teacher.feature_dim, feature_regression=cfg.beta > 0).to(device)
        self.online = self.amn
        self.optimizer = cfg.make_optimizer(self.student.parameters(), capturable=device.type == "cuda")
        self.rng = np.random.default_rng([cfg.seed, run.process.rank, run.segment])
        self.lead = run.lead
        self.trained: nn.Module = self.student
        if run.process.world_size > 1:
            self.trained = nn.parallel.DistributedDataParallel(
                self.student, device_ids=[device.index] if device.type == "cuda" else None)
        self.capturable = run.process.world_size == 1     # DDP's all-reduce is not captured
        self.batch_rows = cfg.per_game * self.num_games
        self.autocast = make_autocast(cfg.amp, device)
        self.expert_paths = experts.paths
        self.meta = amn_meta(games, legal_actions, cfg.architecture, cfg.beta)
        run_info = {"kind": "amn", "games": games, "architecture": cfg.architecture, "beta": float(cfg.beta),
                    "experts": dict(zip(games, experts.paths)), "frame_skip": cfg.frame_skip,
                    "train_epoch_frames": cfg.train_epoch_frames, "world_size": run.process.world_size,
                    "frames_per_game": True}
        self.outputs = [RunOutput(run.out_dir, list(range(self.num_games)), run_info, f"AMN x{self.num_games}",
                                  replay)]
        self.counters_extra = {"experts_tested": 0}

    # -- acting -------------------------------------------------------------------------------------
    def act(self, network: nn.Module, obs: torch.Tensor, env_ids: np.ndarray, frames: int) -> np.ndarray:
        """Epsilon-greedy over each game's legal actions: the AMN's (or the expert's) masked argmax."""
        def greedy() -> torch.Tensor:
            with torch.inference_mode(), self.autocast:
                s_t = obs.to(self.device, non_blocking=True)
                if self.cfg.actor == "amn":
                    scores = network(s_t)
                else:
                    scores = self.teacher(s_t.view(self.num_games, -1, *s_t.shape[1:]))[0].flatten(0, 1)
            return masked_argmax(scores, self.device_masks)

        return epsilon_greedy(self.rng, self.cfg.epsilon, self.masks[env_ids], greedy)

    # -- learning -----------------------------------------------------------------------------------
    def sample(self, replay: ReplayMemory, out: TransitionBatch) -> TransitionBatch:
        return replay.sample(per_game=self.cfg.per_game, out=out)

    def update(self, batch: TransitionBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """One gradient step on per_game rows of every game; returns (policy loss, feature loss)."""
        cfg = self.cfg
        s_t, game_id = batch.obs, batch.game_id
        with self.autocast:
            teacher_q, expert_h = self.teacher(s_t.view(self.num_games, cfg.per_game, *s_t.shape[1:]))
            student_logits, predicted_h = self.trained(s_t)
        loss, policy_loss, feature_loss = actor_mimic_loss(
            student_logits, teacher_q.flatten(0, 1), self.action_masks, game_id, cfg.tau, cfg.loss_reduction,
            predicted_h, expert_h.flatten(0, 1), cfg.beta)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return policy_loss.detach(), feature_loss.detach()

    def after_update(self, updates: int) -> None:
        pass

    # -- testing ------------------------------------------------------------------------------------
    def test_epoch(self, epoch: int, frames: int) -> tuple[list[TestRow], dict]:
        """The AMN on every game (with its agreement with the expert); the experts once per run."""
        cfg = self.cfg
        groups = (self.num_games, cfg.test_envs)
        test_ids = np.repeat(np.arange(self.num_games), cfg.test_envs)   # evaluate's pool: envs grouped by game
        masks = self.action_masks[torch.from_numpy(test_ids).to(self.device)]
        agree, seen = np.zeros(self.num_games, np.int64), np.zeros(self.num_games, np.int64)

        @torch.no_grad()
        def expert_act(obs: torch.Tensor, game_ids: torch.Tensor) -> np.ndarray:
            with self.autocast:
                teacher_q, _ = self.teacher(obs.to(self.device, non_blocking=True).view(*groups, *obs.shape[1:]))
            return masked_argmax(teacher_q.flatten(0, 1), masks).cpu().numpy()

        @torch.no_grad()
        def amn_act(obs: torch.Tensor, game_ids: torch.Tensor) -> np.ndarray:
            with self.autocast:
                logits = self.amn(obs.to(self.device, non_blocking=True))
            a_amn = masked_argmax(logits, masks).cpu().numpy()
            np.add.at(agree, test_ids, a_amn == expert_act(obs, game_ids))
            np.add.at(seen, test_ids, 1)
            return a_amn

        self.amn.eval()
        rows, summary = self._test(amn_act, "amn", epoch, agree, seen)
        self.amn.train()
        result = {"epoch": epoch, "amn": summary}
        if cfg.test_experts and not self.counters_extra["experts_tested"]:
            # The experts never change: one test epoch each (same budget and seeds) is their score.
            expert_rows, result["expert"] = self._test(expert_act, "expert", epoch)
            rows += expert_rows
            self.counters_extra["experts_tested"] = 1
        return rows, result

    def _test(self, act, policy: str, epoch: int, agree: np.ndarray | None = None,
              seen: np.ndarray | None = None) -> tuple[list[TestRow], dict]:
        cfg = self.cfg
        results = test_epoch_results(act, self.games, cfg, epoch)
        rows, summary = [], {}
        for g, game in enumerate(self.games):
            r = results[game]
            share = None if agree is None else agree[g] / max(seen[g], 1)
            rows.append(TestRow(policy, r, share))
            summary[game] = {"mean": r.mean, "max": r.max, "episodes": r.episodes, "agreement": share}
        return rows, summary

    # -- logs and checkpoints -------------------------------------------------------------------------
    def progress_values(self, frames: int, metrics: dict[str, float], output: int) -> dict:
        policy, feature = metrics["policy_loss"], metrics["feature_loss"]
        return {"epsilon": self.cfg.epsilon, "loss": policy + self.cfg.beta * feature if self.cfg.beta else policy}

    def checkpoint(self, output: int) -> tuple[dict, dict]:
        return ({"online": self.amn.state_dict(),
                 "feature_heads": {g: head.state_dict() for g, head in self.student.feature_heads.items()},
                 "optimizer": self.optimizer.state_dict(), "rng": rng_state(self.rng), "config": self.cfg.to_dict(),
                 "experts": dict(zip(self.games, self.expert_paths))}, self.meta)

    def load_checkpoint(self, payload: dict, path: Path) -> None:
        restore(self.amn, payload["online"], path, "online")
        heads = {f"{game}.{name}": t for game, state in payload["feature_heads"].items() for name, t in state.items()}
        restore(self.student.feature_heads, heads, path, "feature_heads")
        restore(self.optimizer, payload["optimizer"], path, "optimizer")
        if self.lead:
            restore_rng(self.rng, payload["rng"])

    def summary(self, metrics: dict[str, float], output: int) -> dict:
        return {**metrics, "games": self.games, "amn": self.amn.eval(), "feature_heads": self.student.feature_heads}


def action_masks(legal_actions: list) -> np.ndarray:
    """bool [games, 18]: row g marks game g's legal actions (an AMN's output is masked to them)."""
    masks = np.zeros((len(legal_actions), NUM_ACTIONS), bool)
    for g, legal in enumerate(legal_actions):
        masks[g, legal] = True
    return masks


# -- training ---------------------------------------------------------------------------------------
def distill(cfg: DistillConfig, resume: bool = False, *, experts: Experts | None = None) -> dict:
    """Train an AMN as cfg says; returns the counters, the last test results, the checkpoint path and the
    trained modules (``amn``, ``feature_heads``).

    experts: the run's experts when the caller has loaded them already (load_experts; the command does,
    to report a bad list as a usage error), else they are loaded from cfg.experts.
    Under torchrun (WORLD_SIZE > 1) it joins or creates the default process group (gloo on CPU, nccl on
    CUDA) and trains with DistributedDataParallel. resume=True continues from <cfg.out>/checkpoint.pt.
    """
    if experts is None:
        experts = load_experts(cfg.expert_paths, cfg.game_list)
    games = experts.games
    num_envs = len(games) * cfg.envs_per_game
    run = RunContext.start(cfg, expect={"kind": "amn", "games": games, "architecture": cfg.architecture,
                                        "beta": float(cfg.beta)},
                           resume=resume, num_envs=num_envs, data_parallel=True, agent_steps_per_step=num_envs,
                           require=RESUME_KEYS + ("feature_heads",))
    world = run.process.world_size
    created_group = False
    if world > 1 and not dist.is_initialized():
        if run.device.type == "cuda":
            torch.cuda.set_device(run.device)
        # Process 0 tests alone while the others wait in their next all-reduce: allow a long test epoch.
        dist.init_process_group("nccl" if run.device.type == "cuda" else "gloo",
                                timeout=datetime.timedelta(minutes=120))
        created_group = True
    try:
        with run.make_pool(games, envs_per_game=cfg.envs_per_game) as pool:
            legal_actions = [pool.legal_actions(g) for g in range(len(games))]
            for game, meta, legal in zip(games, experts.metas, legal_actions):
                if meta["actions"] != [int(a) for a in legal]:
                    raise ValueError(f"the expert for {game} plays actions {meta['actions']}, but the game's legal "
                                     f"actions are {[int(a) for a in legal]}")
            replay = ReplayMemory.for_pool(pool, cfg.replay_capacity,
                                           seed=cfg.seed + run.segment + 1_000_003 * run.process.rank)
            algo = ActorMimic(cfg, experts, legal_actions, pool.game_ids.astype(np.int64), run, replay)
            if run.payload is not None:
                check_actions(run.out_dir, run.payload, algo.meta)
                algo.load_checkpoint(run.payload, run.checkpoint_path)
            schedule = make_schedule(cfg, len(games), rows_per_game=cfg.per_game,
                                     replay_capacity_per_game=cfg.replay_capacity, learning_starts_unit="steps",
                                     world=world)
            return RunLoop(run, algo, pool, replay, schedule).run()[0]
    finally:
        if created_group:
            dist.destroy_process_group()
