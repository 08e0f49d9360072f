"""The run loop every trainer shares: the actor plays, the learner learns, the loop keeps the cadence.

    summaries = RunLoop(run, algo, pool, replay, schedule).run()     # one summary per run folder

One actor step (every env of the pool; rows in env order, whatever order the pool finished them in):

    a_t = algo.act(s_t)                      # one forward pass for all envs (none when every env explores)
    pool.send(a_t)                           # the envs step now ...
    learner.credit(n / agent steps per update)   # ... while the learner updates
    out = pool.recv()                        # s_{t+1}, r_{t+1} and flags of every env
    test epoch, progress rows, checkpoints   # when due, in frames of each game
    replay.add_step(out, a_t)                # one record per env, frames stored once
(a step without updates on this thread uses pool.step(a_t): the same envs, without waking a worker)

Modes (``RunContext.lockstep``):
- lockstep: the learner runs its earned updates inline right after send(), on this thread, while the
  envs step. Rows are processed in env order and the replay changes only between updates, so a seed
  gives the same run bit for bit with any number of envs and env threads.
- overlapped: the learner has its own thread and the rate limiter (rate_limiter.py) holds the replay
  ratio within MAX_LAG updates; the actor acts with ActorWeights, a copy of the online network refreshed
  every ACTOR_REFRESH updates. Checkpoints and test epochs first drain the learner, so they see exactly
  the state a lockstep run has at the same counters; only the timing of updates relative to env steps
  (so which transitions a minibatch can draw) differs, and with it the run.

Run folders: a run writes one folder (run.json, progress.csv, episodes.csv, test.csv, tb/, checkpoint.pt),
or one per game when several experts train together (``RunOutput``): each folder then reports its own
games' episodes, tests and metrics, and holds a checkpoint loadable alone.

An algorithm gives the loop its act step, its update step (run/learner.py: Learns), its test epoch, its
checkpoint contents and the names of its counters; the loop decides when each runs.
"""

from __future__ import annotations

import collections
import contextlib
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from ..files.checkpoint import CHECKPOINT_NAME, remove_stale_temp_files, save_checkpoint
from ..native.pool import MultiGameEnvPool
from .evaluation import GameResult
from ..files.provenance import segment_record
from ..files.run_info import write_run_info
from ..files.run_logs import ResumePoint, RunLogger
from .acting import ActorWeights
from .context import RunContext
from .learner import Learner, Learns
from .precision import precision_record
from .stop_signal import StopRequest

class TrainingDiverged(RuntimeError):
    """The loss or the weights stopped being finite; the last checkpoint written before is kept."""


MAX_LAG = 4.0          # updates the overlapped learner may fall behind before the actor waits
ACTOR_REFRESH = 4      # the actor's weights are copied from the online network every this many updates


@dataclass(frozen=True)
class Schedule:
    """When things happen, in the loop's units (make_schedule turns a config's into these)."""

    frames_per_game: int             # the run's length: emulator frames of each game, all processes together
    frame_skip: int
    num_games: int
    learning_starts: int             # agent steps of this process (all envs) before updates may start
    agent_steps_per_update: int      # the replay ratio: one update per this many agent steps (all envs)
    rows_per_game: int               # transitions of every game the replay must hold before updating
    refill_transitions: int          # ... at least these after a resume whose checkpoint has no replay
    train_epoch_frames: int
    test_epoch_frames: int
    log_every: int
    checkpoint_every: int
    world: int = 1                   # processes stepping envs for the same run (distill's DDP)

    def frames_per_game_at(self, agent_steps: int) -> int:
        return agent_steps * self.frame_skip * self.world // self.num_games


COUNT_UNITS = ("agent_steps_per_game", "agent_steps", "steps")


def make_schedule(cfg, num_games: int, *, rows_per_game: int, replay_capacity_per_game: int,
                  learning_starts_unit: str = "agent_steps_per_game", update_every_unit: str = "agent_steps_per_game",
                  world: int = 1) -> Schedule:
    """The loop's Schedule from a config's settings, each count turned into the loop's units once, here.

    The loop counts agent steps of this process over every env of the pool (num_games x envs_per_game
    envs) and emulator frames of each game. A config's frame settings (frames_per_game,
    train_epoch_frames, test_epoch_frames, log_every, checkpoint_every) are already frames of each game;
    ``learning_starts`` and ``update_every`` are counted in the unit the config states:

        "agent_steps_per_game"  agent steps of each game, summed over its envs (x num_games); with it an
                                update_every of U gives every game 1/U updates per agent step of its own,
                                however many games share an update (expert DQNs, distill)
        "agent_steps"           agent steps summed over every env of every game (x 1; the multitask DQNs'
                                update_every: one update per U agent steps of the whole pool)
        "steps"                 loop steps, one agent step of every env (x num_games x envs_per_game;
                                distill's learning_starts, the authors' lockstep loop)

    rows_per_game: transitions of each game one update draws (the replay must hold them before updating);
    replay_capacity_per_game: what each game's replay holds. After a resume whose checkpoint has no replay,
    the replay refills min(learning_starts in agent steps of each game, replay_capacity_per_game)
    transitions of each game before updates go on. world: processes stepping envs for the run.
    """
    def agent_steps(setting: str, unit: str) -> int:
        count = getattr(cfg, setting)
        if unit == "agent_steps_per_game":
            return count * num_games
        if unit == "agent_steps":
            return count
        if unit == "steps":
            return count * num_games * cfg.envs_per_game
        raise ValueError(f"{setting} unit must be one of {COUNT_UNITS}, got {unit!r}")

    learning_starts = agent_steps("learning_starts", learning_starts_unit)
    return Schedule(frames_per_game=cfg.frames_per_game, frame_skip=cfg.frame_skip, num_games=num_games,
                    learning_starts=learning_starts,
                    agent_steps_per_update=agent_steps("update_every", update_every_unit),
                    rows_per_game=rows_per_game,
                    refill_transitions=min(learning_starts // num_games, replay_capacity_per_game),
                    train_epoch_frames=cfg.train_epoch_frames, test_epoch_frames=cfg.test_epoch_frames,
                    log_every=cfg.log_every, checkpoint_every=cfg.checkpoint_every, world=world)


@dataclass
class RunOutput:
    """One run folder: what it reports (its games' episodes, tests, metrics) and what it checkpoints."""

    folder: Path
    games: list[int]                  # pool game indices
    run_info: dict                    # run.json
    description: str                  # the progress bar's label
    replay: Any = None                # the replay memory saved with its checkpoint (--save-replay)


@dataclass
class TestRow:
    """One row of test.csv: who played (policy), what it scored and, for an AMN, its agreement."""

    policy: str
    result: GameResult
    agreement: float | None = None


class Algorithm(Learns, Protocol):
    online: nn.Module                 # the network the actor reads (a copy of it when overlapped)
    action_map: np.ndarray            # int64 [num_envs, K]: the full-set action of column k for env e
    outputs: list[RunOutput]          # its run folders
    FRAME_COUNTERS: dict[str, str]    # counter name -> "per_game" | "all_games" | "steps" (see public_counters)
    counters_extra: dict[str, int]    # the algorithm's own counters, kept in checkpoints

    def act(self, network: nn.Module, obs: torch.Tensor, env_ids: np.ndarray, frames: int) -> np.ndarray: ...
    def progress_values(self, frames: int, metrics: dict[str, float], output: int) -> dict[str, Any]: ...
    def test_epoch(self, epoch: int, frames: int) -> tuple[list[TestRow], dict]: ...
    def checkpoint(self, output: int) -> tuple[dict, dict]: ...      # (state incl. "config", meta)
    def summary(self, metrics: dict[str, float], output: int) -> dict: ...


class RunLoop:
    def __init__(self, run: RunContext, algo: Algorithm, pool: MultiGameEnvPool, replay, schedule: Schedule):
        self.run_ctx, self.algo, self.pool, self.replay, self.schedule = run, algo, pool, replay, schedule
        self.counters = run.counters
        self.outputs = algo.outputs
        self.output_of_game = np.zeros(pool.num_games, np.int64)
        for o, output in enumerate(self.outputs):
            self.output_of_game[output.games] = o
        self.refill = 0
        if run.payloads is not None:
            for name in algo.counters_extra:
                if name in run.counters.extra:
                    algo.counters_extra[name] = run.counters.extra[name]
            for output, payload in zip(self.outputs, run.payloads):
                if "replay" in payload:
                    output.replay.load_state_dict(payload["replay"])
                else:   # the replay refills before updates go on
                    self.refill = schedule.refill_transitions
        self.lockstep = run.lockstep
        self.learner: Learner | None = None
        self.actor_weights: ActorWeights | None = None
        self.loggers: list[RunLogger] = []
        self.game_returns = [collections.deque(maxlen=100) for _ in range(pool.num_games)]
        self.output_returns = [collections.deque(maxlen=100) for _ in self.outputs]
        self.last_metrics = {name: math.nan for name in algo.METRICS}

    # -- counters under the algorithm's names --------------------------------------------------------
    @property
    def frames(self) -> int:
        """Emulator frames of each game so far (all processes): the unit of every schedule."""
        return self.schedule.frames_per_game_at(self.counters.agent_steps)

    def public_counters(self, output: int = 0) -> dict[str, Any]:
        """A run folder's counters as the algorithm names them (checkpoints, summaries): its FRAME_COUNTERS
        map names to frames of each game, frames of all the folder's games (this process) or lockstep steps
        (every env once); agent_steps and episodes are the folder's games'."""
        c, s = self.counters, self.schedule
        agent_steps = c.agent_steps * len(self.outputs[output].games) // s.num_games
        derived = {"per_game": self.frames, "all_games": agent_steps * s.frame_skip,
                   "steps": c.agent_steps // self.pool.num_envs}
        named = {name: derived[kind] for name, kind in self.algo.FRAME_COUNTERS.items()}
        return {**named, "agent_steps": agent_steps, "updates": c.updates,
                "episodes": c.output_episodes[output], "epochs": c.epochs, "resumes": c.resumes,
                "update_credit": c.update_credit, "wall_s": c.wall_s, **self.algo.counters_extra}

    # -- the run -------------------------------------------------------------------------------------
    def run(self) -> list[dict]:
        """Train to the end of the schedule; one summary per run folder."""
        run, algo, schedule, counters = self.run_ctx, self.algo, self.schedule, self.counters
        device = run.device
        if not self.lockstep:
            self.actor_weights = ActorWeights(algo.online, every=ACTOR_REFRESH)
        self.learner = Learner(algo, self.replay, device, threaded=not self.lockstep, updates=counters.updates,
                               credit=counters.update_credit, max_lag=MAX_LAG,
                               cuda_graphs=getattr(run.cfg, "cuda_graphs", True),
                               on_update=self.actor_weights.refresh if self.actor_weights else None)
        if run.lead:
            for o, output in enumerate(self.outputs):
                remove_stale_temp_files(output.folder / CHECKPOINT_NAME)   # left by a kill during a write
                write_run_info(output.folder, **output.run_info, **precision_record(run.cfg.amp, device),
                               segment=segment_record(self.frames), resumed=run.payloads is not None)
                resume_at = None
                if run.payloads is not None:
                    resume_at = ResumePoint(frames=self.frames, episodes=counters.output_episodes[o],
                                            epochs=counters.epochs)
                self.loggers.append(RunLogger(output.folder, total_frames=schedule.frames_per_game,
                                              initial_frames=self.frames, tensorboard=run.cfg.tensorboard,
                                              progress=run.cfg.progress, description=output.description,
                                              resume_at=resume_at))
        actor_stream = torch.cuda.Stream(device) if device.type == "cuda" and not self.lockstep else None
        self.stop_request = StopRequest().install()     # SIGTERM: checkpoint at the next progress row, return
        try:
            with torch.cuda.stream(actor_stream) if actor_stream is not None else contextlib.nullcontext():
                self.learner.start()
                last_test = self._play()
                self.learner.drain()
                self._sync_counters()
                if run.lead:
                    self._checkpoint()
        finally:
            self.stop_request.uninstall()
            self.learner.stop()
            for logger in self.loggers:
                logger.close()
        summaries = []
        for o, output in enumerate(self.outputs):
            returns = self.output_returns[o]
            summaries.append({**self.public_counters(o), "last_test": self._output_test(last_test, output),
                              "checkpoint": str(output.folder / CHECKPOINT_NAME),
                              "recent_return": float(np.mean(returns)) if returns else math.nan,
                              **algo.summary(self.last_metrics, o)})
        return summaries

    def _output_test(self, last_test: dict, output: RunOutput) -> dict:
        """A folder's share of the last test epoch: with several folders (experts trained together) each
        gets its own game's row, in the shape a one-game run reports."""
        if len(self.outputs) == 1 or "games" not in last_test:
            return last_test
        names = [self.pool.games[g] for g in output.games]
        games = {name: last_test["games"][name] for name in names if name in last_test["games"]}
        if len(names) == 1 and games:
            return {"epoch": last_test["epoch"], **games[names[0]]}
        return {"epoch": last_test["epoch"], "games": games}

    def _play(self) -> dict:
        run, algo, pool, replay, schedule, counters, learner = (self.run_ctx, self.algo, self.pool, self.replay,
                                                                self.schedule, self.counters, self.learner)
        num_games = pool.num_games
        a_tm1 = np.zeros(pool.num_envs, np.int64)     # each env's last action (a column of its network)
        # zero-copy views of the rows step()/reset() return (env order) and recv() returns (finishing order)
        env_rows, finished_rows = pool.env_tensors.obs, pool.batch_tensors.obs
        # On CUDA the act step's observations go through pinned memory, so their copy to the device is
        # asynchronous; the act step's one read-back (the actions) orders it before the next overwrite.
        staging = torch.empty_like(env_rows, pin_memory=True) if run.device.type == "cuda" else None
        learning = False                              # latched: once every game's replay is ready, it stays ready
        min_transitions = max(schedule.rows_per_game, self.refill)
        last_test: dict = {}
        next_log = self.frames + schedule.log_every
        next_checkpoint = self.frames + schedule.checkpoint_every
        self._log_time, self._log_steps = time.perf_counter(), counters.agent_steps
        self._start_time, self._start_wall = time.perf_counter(), counters.wall_s
        agent_steps_per_update = schedule.agent_steps_per_update

        out, obs_rows = pool.reset(), env_rows
        replay.add_step(out, a_tm1[out.env_id])       # episode starts: the actions are ignored
        frames = self.frames
        every_env = np.arange(pool.num_envs)
        test_due = (counters.epochs + 1) * schedule.train_epoch_frames if schedule.test_epoch_frames else math.inf
        while frames < schedule.frames_per_game:
            # Rows in env order: the act step's random draws then go to the same envs in every run.
            env_ids, obs, n = every_env, obs_rows, pool.num_envs
            if obs_rows is finished_rows and (out.env_id != every_env).any():     # recv(): finishing order
                order = np.argsort(out.env_id, kind="stable")
                obs = obs.index_select(0, torch.from_numpy(order))
            if staging is not None:
                obs = staging[:n].copy_(obs)

            # Act, then let the envs step.
            if self.actor_weights is None:
                a_t = algo.act(algo.online, obs, env_ids, frames)
            else:
                with self.actor_weights.reading() as network:
                    a_t = algo.act(network, obs, env_ids, frames)
            actions = algo.action_map[env_ids, a_t]
            a_tm1[:] = a_t
            counters.agent_steps += n
            frames = self.frames

            # Step the envs and learn. When this step's updates run on this thread (lockstep), the envs
            # step meanwhile (send ... recv); otherwise step() is quicker: this thread steps envs too, and
            # one env never waits for a worker thread to wake up.
            if not learning and counters.agent_steps >= schedule.learning_starts:
                ready = min(replay.num_transitions(g) for g in range(num_games)) >= min_transitions
                learning = run_all_agree(run, ready)
            credit = n / agent_steps_per_update if learning else 0.0
            if credit and self.lockstep and learner.earns_update(credit):
                pool.send(actions, env_ids)
                learner.credit(credit)
                out, obs_rows = pool.recv(), finished_rows
            else:
                if credit:
                    learner.credit(credit)                # threaded: the learner updates while the envs step
                out, obs_rows = pool.step(actions), env_rows

            # Test epoch, progress rows and checkpoints when due (tests and files: process 0 only).
            if frames >= test_due:
                counters.epochs += 1
                test_due = (counters.epochs + 1) * schedule.train_epoch_frames
                if run.lead:
                    learner.drain()
                    last_test = self._test_epoch(counters.epochs, frames)
            if frames >= next_log:
                self._progress_rows(frames)
                next_log = frames + schedule.log_every
                if not run_all_agree(run, not self.stop_request.requested):     # any process got SIGTERM
                    print(f"SIGTERM: stopping at {frames:,} frames with a checkpoint (--resume continues)",
                          file=sys.stderr, flush=True)
                    break
            if frames >= next_checkpoint:
                if run.lead:
                    learner.drain()
                    self._sync_counters()
                    self._checkpoint()
                next_checkpoint = frames + schedule.checkpoint_every

            # Collect the step: store it, count finished episodes.
            replay.add_step(out, a_tm1[out.env_id])
            done = out.done
            if done.any():
                self._episodes(out, np.flatnonzero(done), frames)
        return last_test

    # -- cadence -------------------------------------------------------------------------------------
    def _episodes(self, out, rows: np.ndarray, frames: int) -> None:
        for row in rows:
            game = int(out.game_id[row])
            o = self.output_of_game[game]
            ret = float(out.episode_return[row])
            self.counters.episodes += 1
            self.counters.output_episodes[o] += 1
            self.game_returns[game].append(ret)
            self.output_returns[o].append(ret)
            if self.loggers:
                self.loggers[o].row("episodes", frames=frames, game=self.pool.games[game], **{"return": ret},
                                    length=int(out.episode_length[row]))

    def _test_epoch(self, epoch: int, frames: int) -> dict:
        rows, summary = self.algo.test_epoch(epoch, frames)
        for row in rows:
            r = row.result
            o = self.output_of_game[self.pool.games.index(r.game)]
            self.loggers[o].row("test", epoch=epoch, frames=frames, game=r.game, policy=row.policy, mean=r.mean,
                                max=r.max, episodes=r.episodes, test_frames=r.frames,
                                partial_return=r.partial_return, agreement=row.agreement)
        return summary

    def _progress_rows(self, frames: int) -> None:
        now = time.perf_counter()
        counters, schedule = self.counters, self.schedule
        fps = ((counters.agent_steps - self._log_steps) * schedule.frame_skip * schedule.world
               / max(now - self._log_time, 1e-9))                               # every game's frames
        updated = self.learner.updates > counters.updates
        self.last_metrics = self.learner.read_metrics()
        counters.updates = self.learner.updates
        bad = {k: v for k, v in self.last_metrics.items() if not math.isfinite(v)}
        if updated and bad:
            self._diverged(f"{', '.join(f'{k} = {v}' for k, v in bad.items())} (mean since the last progress row)",
                           frames)
        for o, (output, logger) in enumerate(zip(self.outputs, self.loggers)):
            returns = self.output_returns[o]
            recent = float(np.mean(returns)) if returns else math.nan
            output_fps = fps * len(output.games) / schedule.num_games            # this folder's games' frames
            values = self.algo.progress_values(frames, self.last_metrics, o)
            logger.row("progress", frames=frames, wall_s=self._start_wall + now - self._start_time, fps=output_fps,
                       recent_return=recent, updates=counters.updates, **values)
            logger.advance(frames - schedule.frames_per_game_at(self._log_steps), fps=output_fps, ret=recent,
                           **values)
        self._log_time, self._log_steps = now, counters.agent_steps

    def _sync_counters(self) -> None:
        """The learner's counters and the wall time into the run's counters (after a drain)."""
        self.counters.updates = self.learner.updates
        self.counters.update_credit = self.learner.pending_credit
        self.counters.wall_s = self._start_wall + time.perf_counter() - self._start_time

    def _diverged(self, what: str, frames: int) -> None:
        kept = [str(o.folder / CHECKPOINT_NAME) for o in self.outputs if (o.folder / CHECKPOINT_NAME).exists()]
        raise TrainingDiverged(f"training diverged at frame {frames} (update {self.learner.updates}): {what}; "
                               + (f"the last good checkpoint is kept: {', '.join(kept)}" if kept else
                                  "no checkpoint was written before")
                               + " (a smaller --lr, or another --optimizer, may help)")

    def _checkpoint(self) -> None:
        cfg = self.run_ctx.cfg
        # one host read per checkpoint: never overwrite a good checkpoint with weights that are not finite
        if not bool(torch.stack([p.detach().isfinite().all() for p in self.algo.online.parameters()]).all()):
            self._diverged("the online network's weights are not finite", self.frames)
        for o, output in enumerate(self.outputs):
            state, meta = self.algo.checkpoint(o)
            state["counters"] = self.public_counters(o)
            if cfg.save_replay:
                state["replay"] = output.replay.state_dict()
            save_checkpoint(output.folder / CHECKPOINT_NAME, state, meta)


def run_all_agree(run: RunContext, flag: bool) -> bool:
    """flag on every process of a data-parallel run (a MIN all-reduce); flag itself otherwise."""
    if run.process.world_size == 1:
        return flag
    import torch.distributed as dist

    tensor = torch.tensor([int(flag)], device=run.device if run.device.type == "cuda" else "cpu")
    dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    return bool(tensor.item())
