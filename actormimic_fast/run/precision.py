"""The precision of a run's forward passes: bfloat16 autocast (``amp``) where it pays, float32 elsewhere.

``amp`` is True, False or None (auto). Auto turns bfloat16 on where the CPU computes it natively
(AVX512-BF16 or AMX-BF16 in /proc/cpuinfo's flags: oneDNN then runs bfloat16 convolutions and matrix
products at 2-4x float32's rate) and off elsewhere: a CPU without them emulates bfloat16 and runs ~10x
*slower* than float32 (measured: 0.8 GFLOP/s against 107 on an AVX2 EPYC). On CUDA, auto is off, as before.
Weights and optimiser state stay float32 either way; losses are computed in float32.
"""

from __future__ import annotations

import os
from functools import lru_cache

import torch

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_bfloat16_flags() -> tuple[str, ...]:
    """This CPU's flags that mean native bfloat16 arithmetic (empty where there are none, or no /proc/cpuinfo).
    ACTORMIMIC_CPU_BF16=0 in the environment says there are none (auto --amp then stays float32: the test
    suite sets it, so that it runs the same arithmetic on every CPU)."""
    if os.environ.get("ACTORMIMIC_CPU_BF16") == "0":
        return ()
    return _cpu_flags()


@lru_cache(maxsize=1)
def _cpu_flags() -> tuple[str, ...]:
    return _flags_of("/proc/cpuinfo")


def _flags_of(cpuinfo) -> tuple[str, ...]:
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return tuple(flag for flag in NATIVE_BF16_FLAGS if flag in flags)
    except OSError:
        pass
    return ()


def resolve_amp(amp: bool | None, device: torch.device) -> tuple[bool, str]:
    """(whether the forward passes run under bfloat16 autocast, why), for run.json."""
    if amp is not None:
        return bool(amp), "set"
    if device.type == "cpu":
        flags = cpu_bfloat16_flags()
        if flags:
            return True, f"auto: the CPU computes bfloat16 natively ({', '.join(flags)})"
        return False, "auto: the CPU has no native bfloat16 (no avx512_bf16 or amx_bf16 flag)"
    return False, "auto: off on CUDA"


def make_autocast(amp: bool | None, device: torch.device) -> torch.autocast:
    """The autocast context of a run's forward passes. No weight cache: a cached cast would outlive the
    weights it was made from in a replayed CUDA graph (and the update changes them in place)."""
    enabled, _ = resolve_amp(amp, device)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled, cache_enabled=False)


def precision_record(amp: bool | None, device: torch.device) -> dict:
    """What run.json says of the run's precision."""
    enabled, why = resolve_amp(amp, device)
    return {"precision": "bfloat16 autocast" if enabled else "float32", "precision_why": why}
