"""Multitask DQN baselines of Actor-Mimic (appendix C), the algorithm top to bottom.

    summary = train_multitask_dqn(MultitaskDQNConfig(variant="mdqn", games="pong,boxing", out="runs/mdqn"))

Both variants run the expert DQN procedure (agents/dqn.py) on all games at once, with one network:
    MDQN   the Nature DQN with one shared 18-action output;
    MCDQN  the Nature DQN's convolutions shared, then a separate fc 512 + 18-action output per game
           (networks.MultiHeadDQN).
Only each game's legal actions count: they are the only ones explored and taken greedily, and the
bootstrap max_a Q_target(s_t, a) runs over the legal actions of s_t's game, so the Q-values of illegal
actions (never trained) never enter a target.

Data flow of one iteration (as in agents/dqn.py, the CPU and the learner busy at once):

    out = pool.recv()                  # every env of every game: s_t, r_t, flags
    replay.add_step(out, a_{t-1})      # one C++ replay, one ring per env (frames stored once)
    a_t = epsilon-greedy over the legal actions of each env's game (full-set indices)
    pool.send(a_t)                     # the envs step in C++ threads ...
    update() x (num_envs / update_every)   # ... while the learner does the gradient updates
    (test epoch, log, checkpoint when due)

Update ratio. One gradient update of ``batch_size`` transitions per ``update_every`` agent steps summed
over all envs of all games: every transition is replayed batch_size / update_every = 8 times on average,
and every game gets, per frame it plays, the same number of sampled transitions as its expert would. The
one network therefore takes num_games times the updates of one expert per frame of a game; the target
is still copied every ``target_update`` updates (320k sampled transitions, as for an expert).

Units. Every frame count of the config is per game (all games advance in lockstep: each recv() returns
every env), so schedules read as an expert's: epsilon decays over each game's first 1M frames, learning
starts after 50k agent steps of each game, a training epoch is 250k frames of each game. The replay
holds ``replay_capacity`` transitions in all, split evenly over the games.
"""

from __future__ import annotations

import collections
import copy
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import load_checkpoint, save_checkpoint
from ..config import Settings, setting
from ..env import MultiGameEnvPool
from ..evaluation import evaluate, masked_greedy_act
from ..games import NUM_ACTIONS, PAPER_MULTITASK_GAMES, canonical_name
from ..metrics import RunLogger, write_run_info
from ..networks import MultiHeadDQN, build_network
from ..replay import ReplayMemory
from .training_state import q_learning_state, restore_q_learning
from .dqn import epsilon_at, make_optimizer, resolve_device, sync_target, td_loss

CHECKPOINT_NAME = "checkpoint.pt"
VARIANTS = ("mdqn", "mcdqn")
_f = setting


# -- settings --------------------------------------------------------------------------------------
@dataclass
class MultitaskDQNConfig(Settings):
    """Every setting of a multitask DQN run; defaults are the expert DQN's (SPEC section 1), frame counts per game."""

    # -- what and how long ----------------------------------------------------------------------
    variant: str = _f("mdqn", "mdqn (one shared 18-action output) or mcdqn (shared convolutions, a separate "
                      "fc 512 + output per game)", choices=VARIANTS)
    games: str = _f(",".join(PAPER_MULTITASK_GAMES), "games trained together, separated by commas (ale-py ROM ids)")
    frames_per_game: int = _f(10_000_000, "training length in emulator frames of each game (appendix C: 40 "
                              "epochs of 250k)", count=True)
    seed: int = _f(0, "seed of the envs, the network initialisation, exploration and replay sampling")
    device: str = _f("auto", "torch device: auto (cuda when available), cpu, cuda, cuda:1, ...")
    # -- environment ----------------------------------------------------------------------------
    envs_per_game: int = _f(1, "envs of each game stepped by the pool; updates per agent step stay 1/update_every")
    env_threads: int = _f(0, "pool worker threads (0: one per env, at most the CPU count)")
    frame_skip: int = _f(4, "emulator frames per agent step (max over the last two)")
    noop_max: int = _f(30, "up to this many random no-op frames at every episode start")
    max_episode_frames: int = _f(108_000, "episode cap in emulator frames (30 minutes)", count=True)
    # -- learning -------------------------------------------------------------------------------
    replay_capacity: int = _f(1_000_000, "replay memory size in transitions, all games together (split evenly)",
                              count=True)
    batch_size: int = _f(32, "minibatch size")
    batch_sampling: str = _f("uniform", "uniform (over every stored transition of every game, one replay as in "
                             "the paper) or per_game (batch_size / number of games from each game)",
                             choices=("uniform", "per_game"))
    gamma: float = _f(0.99, "discount")
    n_step: int = _f(1, "rewards per return (1: one-step Q-learning, as in the paper)")
    double_dqn: bool = _f(False, "Double DQN target: argmax over legal actions of the online network")
    loss: str = _f("huber", "huber (TD error clipped to [-1, 1], the paper) or mse", choices=("huber", "mse"))
    loss_reduction: str = _f("sum", "sum over the minibatch (DeepMind's code) or mean", choices=("sum", "mean"))
    reward_clip: float = _f(1.0, "clip each reward to [-c, c] at sample time (0: no clipping)")
    life_loss_terminal: bool = _f(True, "a lost life ends the return for bootstrapping (episodes go on)")
    optimizer: str = _f("rmsprop", "rmsprop (DeepMind's, centered, eps inside the sqrt), adam or authors_adam",
                        choices=("rmsprop", "adam", "authors_adam"))
    lr: float = _f(2.5e-4, "learning rate")
    rmsprop_momentum: float = _f(0.95, "RMSProp gradient and squared-gradient momentum")
    rmsprop_eps: float = _f(0.01, "RMSProp min squared gradient (inside the square root)")
    adam_eps: float = _f(1.5e-4, "torch Adam epsilon (used with optimizer=adam)")
    target_update: int = _f(10_000, "copy the online network to the target every this many updates", count=True)
    learning_starts: int = _f(50_000, "agent steps of each game of random play before the first update", count=True)
    update_every: int = _f(4, "agent steps (summed over all envs of all games) per gradient update")
    epsilon_start: float = _f(1.0, "exploration epsilon at frame 0")
    epsilon_end: float = _f(0.1, "exploration epsilon after the decay")
    epsilon_decay_frames: int = _f(1_000_000, "frames of each game over which epsilon decays linearly", count=True)
    amp: bool = _f(False, "bfloat16 autocast for the forward passes (meant for GPUs)")
    torch_threads: int = _f(0, "torch intra-op threads on CPU (0: the cores the pool's threads leave free, at least 1)")
    # -- evaluation (the paper's protocol, every game) --------------------------------------------
    train_epoch_frames: int = _f(250_000, "frames of each game per training epoch; a test epoch follows each",
                                 count=True)
    test_epoch_frames: int = _f(125_000, "frames of each game per test epoch (0: no test epochs)", count=True)
    test_epsilon: float = _f(0.05, "epsilon during test epochs")
    test_envs: int = _f(1, "envs per game playing each test epoch (they share its frame budget)")
    # -- output ---------------------------------------------------------------------------------
    out: str = _f("runs/mdqn", "output folder: checkpoints, CSV files, TensorBoard events")
    checkpoint_every: int = _f(1_000_000, "frames of each game between checkpoints (one is also written at the "
                               "end)", count=True)
    save_replay: bool = _f(False, "put the replay memory in the checkpoint (about 7 KB per transition)")
    log_every: int = _f(10_000, "frames of each game between progress rows (CSV, TensorBoard)", count=True)
    progress: bool = _f(True, "show a progress bar (only on a terminal)")
    tensorboard: bool = _f(True, "write TensorBoard event files")

    TOML_TABLE = "multitask_dqn"

    @property
    def game_list(self) -> list[str]:
        return [canonical_name(g) for g in self.games.split(",") if g.strip()]

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config"):
        """As Settings.from_dict; a TOML list of games is accepted too."""
        games = values.get("games")
        if isinstance(games, (list, tuple)) and all(isinstance(g, str) for g in games):
            values = {**values, "games": ",".join(games)}
        return super().from_dict(values, source)

    def validate(self) -> None:
        super().validate()
        need = self.need
        games = self.game_list
        need(bool(games), "games", "one or more game names separated by commas")
        need(len(set(games)) == len(games), "games", "distinct games (use envs_per_game for copies)")
        for name in ("frames_per_game", "envs_per_game", "frame_skip", "batch_size", "n_step", "target_update",
                     "update_every", "train_epoch_frames", "test_envs", "checkpoint_every", "log_every"):
            need(getattr(self, name) >= 1, name, ">= 1")
        for name in ("seed", "env_threads", "noop_max", "max_episode_frames", "learning_starts",
                     "epsilon_decay_frames", "test_epoch_frames", "torch_threads"):
            need(getattr(self, name) >= 0, name, ">= 0")
        for name in ("gamma", "epsilon_start", "epsilon_end", "test_epsilon", "rmsprop_momentum"):
            need(0 <= getattr(self, name) <= 1, name, "in [0, 1]")
        for name in ("lr", "rmsprop_eps", "adam_eps"):
            need(getattr(self, name) > 0, name, "> 0")
        need(self.reward_clip >= 0, "reward_clip", ">= 0 (0 turns clipping off)")
        need(self.replay_capacity >= len(games) * self.batch_size, "replay_capacity",
             f">= number of games x batch_size ({len(games)} x {self.batch_size})")
        if self.batch_sampling == "per_game":
            need(self.batch_size % len(games) == 0, "batch_size",
                 f"a multiple of the number of games ({len(games)}) with batch_sampling='per_game'")


# -- the pieces of the algorithm (pure functions, tested against hand-computed values) -------------------
def masked_td_target(r_t: torch.Tensor, discount_t: torch.Tensor, q_t_target: torch.Tensor,
                     legal_t: torch.Tensor, q_t_online: torch.Tensor | None = None) -> torch.Tensor:
    """y = r_t + discount_t * Q_target(s_t, a*), a* the argmax over s_t's legal actions only.

    legal_t: bool [B, 18], row b = the legal actions of s_t's game (every row has at least one).
    a* = argmax of Q_target (DQN) or of Q_online (Double DQN), both restricted to legal_t.
    """
    masked_target = q_t_target.masked_fill(~legal_t, -math.inf)
    if q_t_online is None:
        bootstrap = masked_target.max(dim=1).values
    else:
        a_star = q_t_online.masked_fill(~legal_t, -math.inf).argmax(dim=1, keepdim=True)
        bootstrap = q_t_target.gather(1, a_star).squeeze(1)
    return r_t + discount_t * bootstrap


def random_legal_actions(rng: np.random.Generator, game_ids: np.ndarray, action_masks: np.ndarray) -> np.ndarray:
    """One uniformly random legal action (a full-set index) per row, for the row's game."""
    legal = action_masks[game_ids]                                          # [n, 18]
    rank = (rng.random(len(game_ids)) * legal.sum(1)).astype(np.int64)      # which legal action, 0-based
    return np.argmax(legal.cumsum(1) > rank[:, None], axis=1)


def greedy_legal_actions(q_t: torch.Tensor, legal_t: torch.Tensor) -> torch.Tensor:
    """argmax_a Q(s_t, a) over each row's legal actions."""
    return q_t.masked_fill(~legal_t, -math.inf).argmax(dim=1)


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
    payload = load_checkpoint(path, map_location=device)
    meta = payload["meta"]
    if meta.get("kind") not in VARIANTS:
        raise ValueError(f"checkpoint {str(path)!r} was made for kind={meta.get('kind')!r}, not a multitask DQN "
                         f"(one of {VARIANTS})")
    expect = {"kind": variant} if variant else {}
    if games is not None:
        expect["games"] = [canonical_name(g) for g in games]
    for key, wanted in expect.items():
        if meta[key] != wanted:
            raise ValueError(f"checkpoint {str(path)!r} was made for {key}={meta[key]!r}, not {key}={wanted!r}")
    network = build_multitask_network(meta["kind"], len(meta["games"])).to(device)
    network.load_state_dict(payload["online"])
    return network.eval(), meta


# -- training ---------------------------------------------------------------------------------------
def train_multitask_dqn(cfg: MultitaskDQNConfig, resume: bool = False) -> dict:
    """Train one MDQN or MCDQN on all of cfg's games; returns the counters, last test results and checkpoint.

    resume=True continues from <cfg.out>/checkpoint.pt when it exists (network, target, optimiser,
    counters, RNG states, and the replay if it was saved; else the replay refills up to learning_starts
    transitions of each game). The envs restart at new episodes.
    """
    games = cfg.game_list
    num_games = len(games)
    out_dir = Path(cfg.out)
    ckpt_path = out_dir / CHECKPOINT_NAME
    device = resolve_device(cfg.device)
    num_envs = num_games * cfg.envs_per_game
    cores = os.cpu_count() or 1
    env_threads = cfg.env_threads or min(num_envs, cores)
    if device.type == "cpu":
        # Leave the pool's threads their cores: they step the envs while the learner runs (see agents/dqn.py).
        torch.set_num_threads(cfg.torch_threads or max(1, cores - env_threads))

    payload = None
    if resume and ckpt_path.exists():
        payload = load_checkpoint(ckpt_path, expect={"kind": cfg.variant, "games": games, "architecture": "nature"},
                                  map_location="cpu")
    counters = dict(frames=0, frames_per_game=0, agent_steps=0, updates=0, episodes=0, epochs=0, resumes=0,
                    update_credit=0.0, wall_s=0.0)
    if payload is not None:
        counters.update(payload["counters"])
        counters["resumes"] += 1
    segment = counters["resumes"]   # new env and replay seeds after each resume (no repeated episodes)

    # Envs, replay, networks, optimiser. recv() returns every env (the pool's default batch), so the
    # games advance in lockstep and per-game frame counts are exact.
    pool = MultiGameEnvPool(games, envs_per_game=cfg.envs_per_game, seed=cfg.seed + 7919 * segment,
                            num_threads=env_threads + 1, frame_skip=cfg.frame_skip, noop_max=cfg.noop_max,
                            max_episode_frames=cfg.max_episode_frames)
    action_masks = np.array(pool.action_masks)                 # bool [G, 18]
    env_game_ids = pool.game_ids.astype(np.int64)              # [num_envs]
    meta = multitask_meta(cfg, action_masks)
    if payload is not None and payload["meta"]["actions"] != meta["actions"]:
        raise ValueError(f"checkpoint {str(ckpt_path)!r} has actions {payload['meta']['actions']}, "
                         f"the games' are {meta['actions']}")
    capacity_per_game = cfg.replay_capacity // num_games
    replay = ReplayMemory.for_pool(pool, capacity_per_game, n_step=cfg.n_step, gamma=cfg.gamma,
                                   life_loss_terminal=cfg.life_loss_terminal, seed=cfg.seed + segment)
    torch.manual_seed(cfg.seed)
    online = build_multitask_network(cfg.variant, num_games).to(device)
    target = copy.deepcopy(online).requires_grad_(False)
    optimizer = make_optimizer(cfg, online.parameters())
    rng = np.random.default_rng(cfg.seed)
    refill = 0   # transitions each game must hold before updates go on (a resume without a saved replay)
    if payload is not None and not restore_q_learning(payload, online, target, optimizer, rng, replay):
        refill = min(cfg.learning_starts, capacity_per_game)
    del payload

    def checkpoint() -> None:
        state = q_learning_state(online, target, optimizer, counters, rng, cfg.to_dict(),
                                 replay if cfg.save_replay else None)
        save_checkpoint(ckpt_path, state, meta)

    legal_table = torch.from_numpy(action_masks).to(device)   # [G, 18]
    per_game_rows = cfg.batch_size // num_games if cfg.batch_sampling == "per_game" else None
    min_transitions = max(refill, math.ceil(cfg.batch_size / num_games))   # of every game, before updating
    pinned = device.type == "cuda"
    batch_buffer = replay.empty_batch(cfg.batch_size, pin_memory=pinned)
    copy_done = torch.cuda.Event() if pinned else None
    reward_clip = cfg.reward_clip or None
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp)

    def update() -> tuple[torch.Tensor, torch.Tensor]:
        """One gradient step on a minibatch of all games; returns (loss, mean Q(s_tm1, a_tm1))."""
        if copy_done is not None:
            copy_done.synchronize()   # the previous batch's host-to-device copy has left the pinned buffer
        if per_game_rows is None:
            host = replay.sample(cfg.batch_size, reward_clip=reward_clip, out=batch_buffer)
        else:
            host = replay.sample(per_game=per_game_rows, reward_clip=reward_clip, out=batch_buffer)
        batch = host
        if pinned:
            batch = host.to(device, non_blocking=True)
            copy_done.record()
        game_ids = host.game_id        # on the CPU: MCDQN groups rows per game without a device sync
        s_tm1, a_tm1, r_t, discount_t, s_t = batch.obs, batch.action, batch.reward, batch.discount, batch.next_obs
        legal_t = legal_table[batch.game_id]
        with autocast:
            q_tm1 = q_values(online, s_tm1, game_ids).float()
            with torch.no_grad():
                q_t_target = q_values(target, s_t, game_ids).float()
                q_t_online = q_values(online, s_t, game_ids).float() if cfg.double_dqn else None
        q_tm1_a = q_tm1.gather(1, a_tm1.unsqueeze(1)).squeeze(1)   # a_tm1 is a full-set action, always legal
        y = masked_td_target(r_t, discount_t, q_t_target, legal_t, q_t_online)
        loss = td_loss(q_tm1_a, y, cfg.loss, cfg.loss_reduction)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        counters["updates"] += 1
        if counters["updates"] % cfg.target_update == 0:
            sync_target(online, target)
        return loss.detach(), q_tm1_a.detach().mean()

    def test_epoch() -> dict:
        online.eval()
        act = masked_greedy_act(online, action_masks, device,
                                forward=lambda obs, ids: q_values(online, obs, ids))
        results = evaluate(act, games, frames_per_game=cfg.test_epoch_frames, epsilon=cfg.test_epsilon,
                           envs_per_game=cfg.test_envs, seed=cfg.seed + 100_003 + counters["epochs"],
                           noop_max=cfg.noop_max, frame_skip=cfg.frame_skip,
                           max_episode_frames=cfg.max_episode_frames)
        online.train()
        counters["epochs"] += 1
        summary = {}
        for game, result in results.items():
            logger.row("test", epoch=counters["epochs"], frames=counters["frames_per_game"], game=game,
                       policy=cfg.variant, mean=result.mean, max=result.max, episodes=result.episodes,
                       test_frames=result.frames, partial_return=result.partial_return)
            summary[game] = {"mean": result.mean, "max": result.max, "episodes": result.episodes}
        return {"epoch": counters["epochs"], "games": summary}

    write_run_info(out_dir, kind=cfg.variant, games=games, architecture="nature", frame_skip=cfg.frame_skip,
                   train_epoch_frames=cfg.train_epoch_frames, frames_per_game=True)
    logger = RunLogger(out_dir, total_frames=cfg.frames_per_game, initial_frames=counters["frames_per_game"],
                       tensorboard=cfg.tensorboard, progress=cfg.progress, description=cfg.variant)
    recent_returns = [collections.deque(maxlen=100) for _ in games]
    losses, q_means = [], []
    last_test: dict = {}
    next_log = counters["frames_per_game"] + cfg.log_every
    next_checkpoint = counters["frames_per_game"] + cfg.checkpoint_every
    log_time, log_frames = time.perf_counter(), counters["frames"]
    start_time, start_wall = time.perf_counter(), counters["wall_s"]
    a_tm1 = np.zeros(num_envs, np.int64)           # each env's last action (full-set index)
    obs_tensor = pool.batch_tensors.obs            # zero-copy view of the rows recv() returns
    ready = False                                  # every game holds min_transitions

    try:
        pool.async_reset()
        out = pool.recv()
        replay.add_step(out, a_tm1[out.env_id])    # episode starts: the actions are ignored
        while counters["frames_per_game"] < cfg.frames_per_game:
            env_ids = out.env_id.astype(np.int64)
            n = len(env_ids)
            game_ids = env_game_ids[env_ids]

            # Act: epsilon-greedy over each game's legal actions; skip the forward pass when all explore.
            epsilon = epsilon_at(counters["frames_per_game"], cfg.epsilon_start, cfg.epsilon_end,
                                 cfg.epsilon_decay_frames)
            a_t = random_legal_actions(rng, game_ids, action_masks)
            greedy = rng.random(n) >= epsilon
            if greedy.any():
                ids = torch.from_numpy(game_ids)
                with torch.no_grad(), autocast:
                    q_t = q_values(online, obs_tensor[:n].to(device, non_blocking=True), ids)
                a_greedy = greedy_legal_actions(q_t.float(), legal_table[ids.to(device)]).cpu().numpy()
                a_t = np.where(greedy, a_greedy, a_t)
            pool.send(a_t, env_ids)
            a_tm1[env_ids] = a_t
            counters["agent_steps"] += n
            counters["frames"] = counters["agent_steps"] * cfg.frame_skip
            counters["frames_per_game"] = counters["frames"] // num_games

            # Learn while the envs step: one update per update_every agent steps, all games together.
            if counters["agent_steps"] >= cfg.learning_starts * num_games:
                ready = ready or all(replay.num_transitions(g) >= min_transitions for g in range(num_games))
            if ready:
                counters["update_credit"] += n / cfg.update_every
                while counters["update_credit"] >= 1.0:
                    counters["update_credit"] -= 1.0
                    loss, q_mean = update()
                    losses.append(loss)
                    q_means.append(q_mean)

            # Test epoch, logs and checkpoint when due (all in frames of each game).
            frames_per_game = counters["frames_per_game"]
            if cfg.test_epoch_frames and frames_per_game >= (counters["epochs"] + 1) * cfg.train_epoch_frames:
                last_test = test_epoch()
            if frames_per_game >= next_log:
                now = time.perf_counter()
                fps = (counters["frames"] - log_frames) / max(now - log_time, 1e-9)   # all games' frames
                loss_value = float(torch.stack(losses).mean()) if losses else math.nan
                q_value = float(torch.stack(q_means).mean()) if q_means else math.nan
                logger.row("progress", frames=frames_per_game, wall_s=start_wall + now - start_time, fps=fps,
                           epsilon=epsilon, loss=loss_value, q_mean=q_value, updates=counters["updates"])
                logger.advance(frames_per_game - (log_frames // num_games), fps=fps, loss=loss_value, eps=epsilon)
                losses.clear()
                q_means.clear()
                log_time, log_frames = now, counters["frames"]
                next_log = frames_per_game + cfg.log_every
            if frames_per_game >= next_checkpoint:
                counters["wall_s"] = start_wall + time.perf_counter() - start_time
                checkpoint()
                next_checkpoint = frames_per_game + cfg.checkpoint_every

            # Collect the step: store it, count finished episodes.
            out = pool.recv()
            replay.add_step(out, a_tm1[out.env_id])
            for row in np.flatnonzero(out.done):
                g = int(out.game_id[row])
                counters["episodes"] += 1
                recent_returns[g].append(float(out.episode_return[row]))
                logger.row("episodes", frames=counters["frames_per_game"], game=games[g],
                           **{"return": float(out.episode_return[row])}, length=int(out.episode_length[row]))

        counters["wall_s"] = start_wall + time.perf_counter() - start_time
        checkpoint()
    finally:
        logger.close()
        pool.close()
    recent = {game: float(np.mean(r)) if r else math.nan for game, r in zip(games, recent_returns)}
    return {**counters, "last_test": last_test, "checkpoint": str(ckpt_path), "recent_return": recent}
