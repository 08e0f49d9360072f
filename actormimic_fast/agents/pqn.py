"""Expert PQN (Gallici et al. 2024, "Simplifying Deep Temporal Difference Learning"): the algorithm, top to bottom.

    summary = train_pqn_expert(PQNConfig(game="pong", frames_per_game=10_000_000, out="runs/pong"))

Many envs of the game in the C++ pool act epsilon-greedily in one forward pass; every T agent steps the
rollout's Peng Q(lambda) returns are built from the acting passes' own Q-values, and the network takes E
epochs of M minibatches of squared TD error on them. No replay memory, no target network: the LayerNorms
of the network (models/networks.py, NatureLayerNormDQN) keep the bootstrapped targets stable. RAdam with
its learning rate decayed linearly to 0 over the run, gradient norm clipped to 10, epsilon 1 -> 0.01 over
the first 10% of frames, rewards clipped, a lost life cuts the bootstrap (the episode goes on).

It trains on the run loop every trainer shares (run/loop.py, lockstep): the loop acts, steps the envs,
hands each step to the rollout (run/rollouts.py, in the place of a replay) and runs one "update" per
rollout, T loop steps apart (the whole E x M minibatch pass), and keeps the test epochs, progress rows and
checkpoints at their frame marks. The checkpoint is an expert's, like a DQN's (kind, game, action set,
architecture): evaluate, play, distill, transfer and report take it as they are.

Resuming continues the weights, optimiser, counters and random streams; the envs restart at new episodes
(an emulator's state is not in a checkpoint), and with them a new rollout: its first is T - 1 steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..files.checkpoint import CHECKPOINT_NAME, RESUME_KEYS, check_actions
from ..models.networks import ARCHITECTURES
from ..native.games import canonical_name
from ..run.acting import epsilon_at, epsilon_greedy
from ..run.context import RunContext
from ..run.loop import RunLoop, make_schedule
from ..run.rollouts import Rollout, RolloutBuffer, q_lambda_returns
from ..run.settings import (ComputeSettings, EnvSettings, EvaluationSettings, OptimizerSettings, OutputSettings,
                            setting as _f)
from .dqn import DQNConfig, ExpertDQN, check_run_info, expert_init, games_trained_together


# -- settings ---------------------------------------------------------------------------------------
@dataclass
class PQNConfig(OutputSettings, EvaluationSettings, ComputeSettings, OptimizerSettings, EnvSettings):
    """Every setting of an expert PQN run. Defaults: the PQN paper's Atari recipe (RAdam 2.5e-4, gamma 0.99,
    lambda 0.65, clip 10, epsilon to 0.01 over 10%) with the rollout sized for a 2-core CPU (see docs/pqn.md)."""

    game: str = _f("pong", "game to train on (ale-py ROM id, e.g. pong, space_invaders)")
    frames_per_game: int = _f(10_000_000, "training length in emulator frames (agent steps x frame_skip)", count=True,
                              low=1)
    envs_per_game: int = _f(64, "envs of the game, acting in one forward pass", low=1)
    rollout_steps: int = _f(32, "agent steps of every env per rollout (T)", low=1)
    epochs: int = _f(2, "passes over each rollout (E)", low=1)
    minibatches: int = _f(16, "minibatches per pass (M); each holds T x envs_per_game / M steps of every game", low=1)
    gamma: float = _f(0.99, "discount", low=0, high=1)
    q_lambda: float = _f(0.65, "lambda of the Q(lambda) returns (0: one-step Q-learning targets)", low=0, high=1)
    anneal_lr: bool = _f(True, "decay the learning rate linearly from lr to 0 over frames_per_game (CleanRL's "
                               "anneal_lr, the PQN paper's linear decay); a resume with more --frames raises it again")
    max_grad_norm: float = _f(10.0, "clip each network's gradient to this norm (0: no clipping)", low=0)
    reward_clip: float = _f(1.0, "clip each reward to [-c, c] (0: no clipping)", low=0, note="0 turns clipping off")
    life_loss_terminal: bool = _f(True, "a lost life ends the return for bootstrapping (episodes go on)")
    epsilon_start: float = _f(1.0, "exploration epsilon at frame 0", low=0, high=1)
    epsilon_end: float = _f(0.01, "exploration epsilon after the decay", low=0, high=1)
    exploration_fraction: float = _f(0.1, "fraction of frames_per_game over which epsilon decays linearly",
                                     low=0, high=1)
    architecture: str = _f("nature_ln", "network: nature_ln (the Nature DQN with LayerNorms, PQN's), nature or large",
                           choices=ARCHITECTURES)
    compile: bool = DQNConfig.with_default("compile", False)
    init: str = DQNConfig.with_default("init", "")
    optimizer: str = OptimizerSettings.with_default("optimizer", "radam")
    adam_eps: float = OptimizerSettings.with_default("adam_eps", 1e-8)
    lockstep: bool | None = ComputeSettings.with_default("lockstep", True)
    out: str = _f("runs/expert", "output folder: checkpoints, CSV files, TensorBoard events")

    TOML_TABLE = "expert"
    RENAMED = DQNConfig.RENAMED          # the command line takes --frames and --num-envs for both algorithms
    CHECKPOINT_KINDS = ("expert",)

    # the run loop's schedule in loop steps (make_schedule's "steps" unit): credit starts at the second act
    # step (the first has no step before it), so every rollout but a resumed segment's first has T steps
    @property
    def learning_starts(self) -> int:
        return 2

    @property
    def update_every(self) -> int:
        return self.rollout_steps

    @property
    def epsilon_decay_frames(self) -> int:
        return int(self.exploration_fraction * self.frames_per_game)

    def validate(self) -> None:
        super().validate()
        steps = self.rollout_steps * self.envs_per_game
        self.need(self.minibatches <= steps and steps % self.minibatches == 0, "minibatches",
                  f"a divisor of rollout_steps x envs_per_game ({steps}): equal minibatches")
        self.need(self.lockstep is not False, "lockstep", "true or auto: PQN's rollout is filled and taken on the "
                                                         "run loop's thread (--no-lockstep is DQN's)")
        self.need(not self.save_replay, "save_replay", "false: PQN has no replay memory to save")


RUN_INFO = {"kind": "expert", "algorithm": "pqn"}


# -- the algorithm ----------------------------------------------------------------------------------
class ExpertPQN(ExpertDQN):
    """One PQN expert per game, each over its game's legal actions. Experts trained together share one
    forward pass, backward pass and optimiser step, each with its own loss, gradient clip and exploration
    stream, as with DQN experts (agents/dqn.py); only the learning differs."""

    uses_target = False      # PQN bootstraps from the online network's acting passes
    capturable = False       # the update loops over minibatches on the host
    on_policy = True         # the learner takes whole rollouts (run/learner.py)

    def __init__(self, cfg: PQNConfig, games: list[str], legal_actions: list[np.ndarray], device: torch.device,
                 rollout: RolloutBuffer, folders: list[Path], initial_online: dict[str, torch.Tensor] | None = None):
        super().__init__(cfg, games, legal_actions, cfg.envs_per_game, device, None, folders, dict(RUN_INFO),
                         initial_online)
        self.rollout = rollout
        self.frames = 0          # frames per game at the last acting step: the annealed learning rate's clock
        # each expert's own minibatch order, as it would be alone
        self.shuffles = [torch.Generator().manual_seed(cfg.seed) for _ in games]

    # -- acting: epsilon-greedy, and the acting pass's Q-values go into the rollout ------------------------
    def act(self, network: torch.nn.Module, obs: torch.Tensor, env_ids: np.ndarray, frames: int) -> np.ndarray:
        with torch.inference_mode(), self.autocast:
            q_t = self.q_rows(network, obs.to(self.device, non_blocking=True)).float()
        q_max, best = q_t.masked_fill(~self.device_masks, -math.inf).max(1)
        best = best.cpu()
        epsilon, per_game = self.epsilon(frames), self.envs_per_game
        a_t = np.concatenate([
            epsilon_greedy(rng, epsilon, self.masks[g * per_game:(g + 1) * per_game],
                           lambda g=g: best[g * per_game:(g + 1) * per_game], num_legal=len(legal))
            for g, (rng, legal) in enumerate(zip(self.rngs, self.legal_actions))])
        self.rollout.add_act(obs, a_t, q_max)
        self.frames = frames
        return a_t

    def epsilon(self, frames: int) -> float:
        cfg = self.cfg
        return epsilon_at(frames, cfg.epsilon_start, cfg.epsilon_end, cfg.epsilon_decay_frames)

    # -- learning: the whole rollout is one "update" of the learner -------------------------------------
    def sample(self, rollout: RolloutBuffer, out: None) -> Rollout:
        return rollout.take()

    def update(self, rollout: Rollout) -> tuple[torch.Tensor, ...]:
        """E epochs x M minibatches on the rollout's Q(lambda) returns; each game's mean loss and Q(s_t, a_t)
        over the trained rows."""
        cfg, groups = self.cfg, self.groups
        if cfg.anneal_lr:
            for group in self.optimizer.param_groups:
                group["lr"] = annealed_lr(cfg.lr, self.frames, cfg.frames_per_game)
        returns = q_lambda_returns(rollout.reward, rollout.cut, rollout.truncated, rollout.q_next,
                                   gamma=cfg.gamma, lam=cfg.q_lambda)

        def per_game(x: torch.Tensor) -> torch.Tensor:      # [T, N, ...] -> [games, T x envs_per_game, ...]
            x = x.view(x.shape[0], groups, -1, *x.shape[2:]).transpose(0, 1)
            return x.reshape(groups, -1, *x.shape[3:]).to(self.device, non_blocking=True)

        obs, action, target = per_game(rollout.obs), per_game(rollout.action), per_game(returns)
        weight = per_game(rollout.valid.float())
        rows, game_index = obs.shape[1], torch.arange(groups, device=self.device).unsqueeze(1)
        loss_sum = torch.zeros(groups, device=self.device)
        q_sum = torch.zeros(groups, device=self.device)          # Q(s_t, a_t) of the trained rows
        for _ in range(cfg.epochs):
            order = torch.stack([torch.randperm(rows, generator=shuffle) for shuffle in self.shuffles]).to(self.device)
            for chunk in order.tensor_split(cfg.minibatches, dim=1):     # [games, rows of the minibatch]
                rows_of = lambda x: x[game_index, chunk]                 # [games, rows of the minibatch, ...]
                s_t, a_t, g_t, w_t = rows_of(obs).flatten(0, 1), rows_of(action), rows_of(target), rows_of(weight)
                with self.autocast:
                    q_t = self.q_rows(self.online, s_t).float()
                q_t_a = q_t.gather(1, a_t.reshape(-1, 1)).view(groups, -1)
                per_group = (w_t * (q_t_a - g_t).square()).sum(1) / w_t.sum(1).clamp(min=1)
                self.optimizer.zero_grad(set_to_none=True)
                per_group.sum().backward()
                if cfg.max_grad_norm:
                    clip_each_network(self.online, groups, cfg.max_grad_norm)
                self.optimizer.step()
                loss_sum += per_group.detach()
                q_sum += (w_t * q_t_a.detach()).sum(1)
        loss = loss_sum / (cfg.epochs * cfg.minibatches)
        q_mean = q_sum / weight.sum(1).clamp(min=1) / cfg.epochs
        return (*loss.unbind(), *q_mean.unbind())

    def after_update(self, updates: int) -> None:
        pass

    # -- checkpoints: an expert's, plus the minibatch order's stream -------------------------------------
    def checkpoint(self, output: int) -> tuple[dict, dict]:
        state, meta = super().checkpoint(output)
        state["shuffle_rng"] = {"torch_generator": self.shuffles[output].get_state()}
        return state, meta

    def load_checkpoints(self, payloads: list[dict], paths: list[Path]) -> None:
        super().load_checkpoints(payloads, paths)
        for shuffle, payload in zip(self.shuffles, payloads):
            shuffle.set_state(payload["shuffle_rng"]["torch_generator"])


def annealed_lr(lr: float, frames: int, frames_per_game: int) -> float:
    """The learning rate after `frames` of a run of frames_per_game: linear from lr to 0 (never below 0)."""
    return lr * max(0.0, 1.0 - frames / frames_per_game)


@torch.no_grad()
def clip_each_network(online: torch.nn.Module, groups: int, max_norm: float) -> None:
    """Clip each expert's gradient to max_norm on its own: a plain network, SeparateNetworks' networks, or
    StackedNetworks' slices k of its stacked gradients (experts trained together stay independent)."""
    if groups == 1:
        torch.nn.utils.clip_grad_norm_(online.parameters(), max_norm)
    elif hasattr(online, "networks"):
        for network in online.networks:
            torch.nn.utils.clip_grad_norm_(network.parameters(), max_norm)
    else:
        grads = [p.grad for p in online.parameters() if p.grad is not None]
        norms = torch.stack([g.flatten(1).square().sum(1) for g in grads]).sum(0).sqrt()     # [groups]
        scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)         # clip_grad_norm_'s rule, per expert
        for g in grads:
            g.mul_(scale.view(-1, *([1] * (g.dim() - 1))))


# -- training ---------------------------------------------------------------------------------------
def train_pqn_expert(cfg: PQNConfig, resume: bool = False) -> dict:
    """Train one PQN expert as cfg says; returns the final counters, last test result and checkpoint path.
    resume=True continues from <cfg.out>/checkpoint.pt when it exists. cfg.init: start from an expert's weights."""
    game = canonical_name(cfg.game)
    return _train([game], cfg, [Path(cfg.out)], resume, expert_init(cfg, game, resume))[0]


def train_pqn_experts(cfg: PQNConfig, games: list[str], resume: bool = False) -> dict[str, dict]:
    """One PQN expert per game, trained together in one pool (cfg.game is ignored), each into <cfg.out>/<game>,
    each as train_pqn_expert would train it alone. Returns {game: summary}."""
    games = games_trained_together(cfg, games)
    return dict(zip(games, _train(games, cfg, [Path(cfg.out) / game for game in games], resume)))


def _train(games: list[str], cfg: PQNConfig, folders: list[Path], resume: bool,
           initial_online: dict[str, torch.Tensor] | None = None) -> list[dict]:
    expects = [{"kind": "expert", "game": game, "architecture": cfg.architecture} for game in games]
    num_envs = cfg.envs_per_game * len(games)
    run = RunContext.start(cfg, expect=expects, resume=resume, num_envs=num_envs, folders=folders,
                           require=RESUME_KEYS + ("shuffle_rng",))
    check_run_info(run, RUN_INFO)
    run.counters.update_credit = 0.0            # a resumed segment starts a new rollout (the envs restart)
    with run.make_pool(games, envs_per_game=cfg.envs_per_game) as pool:
        legal_actions = [pool.legal_actions(g) for g in range(len(games))]
        rollout = RolloutBuffer(num_envs, cfg.rollout_steps + 1, reward_clip=cfg.reward_clip or None,
                                life_loss_terminal=cfg.life_loss_terminal)
        algo = ExpertPQN(cfg, games, legal_actions, run.device, rollout, folders,
                         initial_online if run.payloads is None else None)
        if run.payloads is not None:
            for o, payload in enumerate(run.payloads):
                check_actions(run.folders[o], payload, algo.checkpoint(o)[1])
            algo.load_checkpoints(run.payloads, [f / CHECKPOINT_NAME for f in run.folders])
        schedule = make_schedule(cfg, len(games), rows_per_game=0, replay_capacity_per_game=0,
                                 learning_starts_unit="steps", update_every_unit="steps")
        return RunLoop(run, algo, pool, rollout, schedule).run()
