"""One game per process under torchrun: `torchrun --nproc-per-node 8 -m actormimic_fast.cli train-expert
--games a,b,...` trains 8 independent experts (no gradient sharing, so no process group is needed).

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; process RANK trains games[RANK::WORLD_SIZE] one after
the other on cuda:LOCAL_RANK (when CUDA is there). Without torchrun the one process trains every game.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ProcessInfo:
    rank: int
    world_size: int
    local_rank: int


def process_info(environ: dict | None = None) -> ProcessInfo:
    """RANK / WORLD_SIZE / LOCAL_RANK from the environment (0 / 1 / 0 without torchrun)."""
    env = os.environ if environ is None else environ

    def read(name: str, default: int) -> int:
        text = env.get(name)
        if text is None:
            return default
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"environment variable {name} must be an integer, got {text!r}") from None
        if value < 0:
            raise ValueError(f"environment variable {name} must be >= 0, got {value}")
        return value

    info = ProcessInfo(read("RANK", 0), read("WORLD_SIZE", 1), read("LOCAL_RANK", 0))
    if info.world_size < 1 or info.rank >= info.world_size:
        raise ValueError(f"RANK={info.rank} must be < WORLD_SIZE={info.world_size}")
    return info


def games_for_process(games: list[str], info: ProcessInfo) -> list[str]:
    """This process's share: games[rank::world_size]. More processes than games is an error (idle GPUs)."""
    if info.world_size > len(games):
        raise ValueError(f"{info.world_size} processes for {len(games)} game(s) {games}: give at least as many "
                         f"games as processes (--nproc-per-node)")
    return games[info.rank::info.world_size]


def device_for_process(device: str, info: ProcessInfo) -> str:
    """'auto' becomes cuda:LOCAL_RANK when CUDA is available under torchrun; anything else is kept."""
    import torch

    if device == "auto" and info.world_size > 1 and torch.cuda.is_available():
        return f"cuda:{info.local_rank % torch.cuda.device_count()}"
    return device
