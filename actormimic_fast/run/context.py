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

from ..checkpoint import CHECKPOINT_NAME, load_checkpoint
from ..distributed import ProcessInfo, device_for_process, process_info
from ..env import MultiGameEnvPool


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
    extra: dict[str, int] = field(default_factory=dict)   # the algorithm's own (e.g. experts_tested)


@dataclass
class RunContext:
    cfg: Any
    out_dir: Path
    checkpoint_path: Path
    device: torch.device
    process: ProcessInfo
    counters: Counters
    payload: dict | None          # the resumed checkpoint (None on a fresh start)
    env_threads: int

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
    def start(cls, cfg, *, expect: dict[str, Any], resume: bool, num_envs: int, data_parallel: bool = False,
              agent_steps_per_step: int | None = None) -> "RunContext":
        """Resolve the device, leave the pool its cores, and load <out>/checkpoint.pt when resuming.

        expect: meta keys the resumed checkpoint must have (load_checkpoint checks them).
        data_parallel: one run over every torchrun process (distill's DDP): the rank moves the env seeds
            and only process 0 writes files. Otherwise the run is this process's alone.
        agent_steps_per_step: for checkpoints older than the agent_steps counter that counted lockstep
            steps instead (distill): agent steps = steps x this.
        """
        info = process_info() if data_parallel else ProcessInfo(rank=0, world_size=1, local_rank=0)
        device = resolve_device(device_for_process(cfg.device, info))
        cores = os.cpu_count() or 1
        env_threads = cfg.env_threads or min(num_envs, cores)
        if device.type == "cpu":
            # The pool's threads step envs while the learner runs: leave them their cores. Oversubscribed
            # OpenMP threads spin at barriers; on 2 cores, 2 torch threads + 1 env thread ran 20x slower.
            torch.set_num_threads(cfg.torch_threads or max(1, cores - env_threads))
        out_dir = Path(cfg.out)
        path = out_dir / CHECKPOINT_NAME
        payload = load_checkpoint(path, expect=expect, map_location="cpu") if resume and path.exists() else None
        counters = Counters()
        if payload is not None:
            saved = dict(payload["counters"])
            if "agent_steps" not in saved:      # distill checkpoints before the shared run loop
                saved["agent_steps"] = saved["steps"] * (agent_steps_per_step or 1)
            known = {name for name in Counters.__dataclass_fields__ if name != "extra"}
            counters = Counters(**{k: saved[k] for k in known if k in saved})
            counters.extra = {k: v for k, v in saved.items() if k not in known and k not in _DERIVED}
            counters.resumes += 1
        return cls(cfg=cfg, out_dir=out_dir, checkpoint_path=path, device=device, process=info,
                   counters=counters, payload=payload, env_threads=env_threads)

    def make_pool(self, games: list[str], envs_per_game: int) -> MultiGameEnvPool:
        """All games in one pool; seeds move with the segment and the rank. num_threads counts the
        caller's thread, which acts and learns while the pool's env_threads step the envs."""
        cfg = self.cfg
        return MultiGameEnvPool(games, envs_per_game=envs_per_game,
                                seed=cfg.seed + 7919 * self.segment + 1_000_003 * self.process.rank,
                                num_threads=self.env_threads + 1, frame_skip=cfg.frame_skip,
                                noop_max=cfg.noop_max, max_episode_frames=cfg.max_episode_frames)


# Counter names that are derived from agent_steps (see RunLoop.public_counters), never restored as extras.
_DERIVED = ("frames", "frames_per_game", "steps")
