"""What every run sets up before its algorithm: device and CPU threads, the run folder, a resumed
checkpoint and the counters, and the pool.

    run = RunContext.start(cfg, expect={"kind": "expert", "game": "pong", ...}, resume=True, num_envs=4)
    pool = run.make_pool(["pong"], envs_per_game=4)

Seeds: each resume starts a new *segment* (counters["resumes"]), and the pool and replay seeds move
with it, so a resumed run never replays the episodes of the segment before. Under torchrun every
process has its own env seeds (rank) and process 0 alone writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..files.checkpoint import CHECKPOINT_NAME, RESUME_KEYS, load_checkpoint
from .processes import ProcessInfo, device_for_process, process_info
from ..native.pool import MultiGameEnvPool


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; ValueError naming the device for anything unusable."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}") from exc
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} but torch.cuda.is_available() is False (use --device cpu)")
    return device


@dataclass
class Counters:
    """The run's progress; checkpoints keep it (under the algorithm's names, see RunLoop.public_counters)."""

    agent_steps: int = 0      # agent steps of this process, all envs together
    updates: int = 0
    episodes: int = 0
    epochs: int = 0
    resumes: int = 0
    update_credit: float = 0.0
    wall_s: float = 0.0
    extra: dict[str, int] = field(default_factory=dict)          # the algorithm's own (e.g. experts_tested)
    output_episodes: list[int] = field(default_factory=list)     # episodes of each run folder's games


@dataclass
class RunContext:
    """A run: its config, device, process, counters and run folders (one, or one per game for experts trained
    together), with their checkpoints when resumed."""

    cfg: Any
    folders: list[Path]
    device: torch.device
    process: ProcessInfo
    counters: Counters
    payloads: list[dict] | None   # the resumed checkpoints, one per folder (None on a fresh start)
    env_threads: int

    @property
    def out_dir(self) -> Path:
        return self.folders[0]

    @property
    def checkpoint_path(self) -> Path:
        return self.folders[0] / CHECKPOINT_NAME

    @property
    def payload(self) -> dict | None:
        """The resumed checkpoint of the (first) run folder."""
        return self.payloads[0] if self.payloads is not None else None

    @property
    def lead(self) -> bool:
        """Process 0: the one that tests, logs and writes checkpoints."""
        return self.process.rank == 0

    @property
    def segment(self) -> int:
        return self.counters.resumes

    @property
    def lockstep(self) -> bool:
        """The configured mode: lockstep unless --no-lockstep, or auto on a CUDA device (overlapped)."""
        setting = self.cfg.lockstep
        return self.device.type != "cuda" if setting is None else bool(setting)

    @classmethod
    def start(cls, cfg, *, expect: dict[str, Any] | list[dict[str, Any]], resume: bool, num_envs: int,
              folders: list[Path] | None = None, data_parallel: bool = False,
              agent_steps_per_step: int | None = None, require: tuple[str, ...] = RESUME_KEYS) -> "RunContext":
        """Resolve the device, leave the pool its cores, and load each folder's checkpoint.pt when resuming.

        folders: the run folders (default: [cfg.out]); expect: the meta keys each one's checkpoint must have
            (load_checkpoint checks them), one dict for all or one per folder; require: the entries it must hold.
        data_parallel: one run over every torchrun process (distill's DDP): the rank moves the env seeds
            and only process 0 writes files. Otherwise the run is this process's alone.
        agent_steps_per_step: for checkpoints older than the agent_steps counter that counted lockstep
            steps instead (distill): agent steps = steps x this.
        """
        info = process_info() if data_parallel else ProcessInfo(rank=0, world_size=1, local_rank=0)
        device = resolve_device(device_for_process(cfg.device, info))
        cores = os.cpu_count() or 1
        env_threads = cfg.env_threads or default_env_threads(num_envs, cores)
        if device.type == "cpu":
            torch.set_num_threads(cfg.torch_threads or default_torch_threads(cfg.lockstep, cores, env_threads))
        folders = [Path(f) for f in folders] if folders is not None else [Path(cfg.out)]
        expects = expect if isinstance(expect, list) else [expect] * len(folders)
        payloads = None
        if resume:
            found = [(folder / CHECKPOINT_NAME).exists() for folder in folders]
            if any(found) and not all(found):
                have = [str(f) for f, ok in zip(folders, found) if ok]
                lack = [str(f) for f, ok in zip(folders, found) if not ok]
                raise ValueError(f"--resume: checkpoints exist in {have} but not in {lack}; runs trained together "
                                 f"resume together (start the missing ones in a run of their own)")
            if all(found):
                payloads = [load_checkpoint(folder / CHECKPOINT_NAME, expect=e, map_location="cpu", require=require)
                            for folder, e in zip(folders, expects)]
        counters = Counters(output_episodes=[0] * len(folders))
        if payloads is not None:
            counters = _resumed_counters(payloads, folders, agent_steps_per_step)
        return cls(cfg=cfg, folders=folders, device=device, process=info, counters=counters, payloads=payloads,
                   env_threads=env_threads)

    def make_pool(self, games: list[str], envs_per_game: int) -> MultiGameEnvPool:
        """All games in one pool; seeds move with the segment and the rank. num_threads counts the
        caller's thread, which acts and learns while the pool's env_threads step the envs."""
        cfg = self.cfg
        return MultiGameEnvPool(games, envs_per_game=envs_per_game,
                                seed=cfg.seed + 7919 * self.segment + 1_000_003 * self.process.rank,
                                num_threads=self.env_threads + 1, frame_skip=cfg.frame_skip,
                                noop_max=cfg.noop_max, max_episode_frames=cfg.max_episode_frames)


def default_env_threads(num_envs: int, cores: int) -> int:
    """The pool's worker threads when --env-threads is 0: one per env, at most one per core. (Overlapped on
    2 cores, leaving the learner a core with 1 worker made distillation's learn phase 1.1x faster and the
    4-env expert's 0.88x in one reading: not worth a rule.)"""
    return min(num_envs, cores)


def default_torch_threads(lockstep: bool | None, cores: int, env_threads: int) -> int:
    """Torch's intra-op threads on a CPU when --torch-threads is 0.

    Lockstep (the CPU default): every core. The pool's threads sleep during the acting pass and during an
    update but for its start (the envs of the step that earned it step meanwhile), so torch has the cores
    to itself (2 cores: the learn phase 1.4-2.0x faster than with 1 thread; measured on 2 cores only).
    Overlapped: the cores the pool's threads leave free (at least 1), because they step envs while the
    learner runs and oversubscribed OpenMP threads spin at barriers (2 torch threads + 1 env thread on 2
    cores ran 20x slower)."""
    if lockstep is None or lockstep:        # auto is lockstep on a CPU
        return cores
    return max(1, cores - env_threads)


# Counter names that are derived from agent_steps (see RunLoop.public_counters), never restored as extras.
_DERIVED = ("frames", "frames_per_game", "steps")
_KNOWN = ("agent_steps", "updates", "episodes", "epochs", "resumes", "update_credit", "wall_s")


def _resumed_counters(payloads: list[dict], folders: list[Path], agent_steps_per_step: int | None) -> Counters:
    """The counters of resumed checkpoints (one per run folder, all of one run: they must agree)."""
    saved = []
    for payload in payloads:
        values = dict(payload["counters"])
        if "agent_steps" not in values:      # distill checkpoints before the shared run loop
            values["agent_steps"] = values["steps"] * (agent_steps_per_step or 1)
        saved.append(values)
    for key in ("agent_steps", "updates", "epochs", "resumes"):
        if len({values[key] for values in saved}) > 1:
            found = {str(f): values[key] for f, values in zip(folders, saved)}
            raise ValueError(f"--resume: the checkpoints of runs trained together disagree on {key}: {found}")
    first = saved[0]
    counters = Counters(**{k: first[k] for k in _KNOWN if k in first})
    counters.agent_steps = sum(values["agent_steps"] for values in saved)   # each folder's games' agent steps
    counters.output_episodes = [int(values["episodes"]) for values in saved]
    counters.episodes = sum(counters.output_episodes)
    counters.extra = {k: v for k, v in first.items() if k not in _KNOWN and k not in _DERIVED}
    counters.resumes += 1
    return counters
