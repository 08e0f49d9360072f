"""Where a run's numbers came from: one record per training segment (a fresh start or a --resume).

    record = segment_record(frames=0)        # when, the command line, the commit, the machine, the versions
    write_run_info(out, ..., segment=record) # run.json keeps every segment of the run, oldest first

A shipped expert (agents/shipping.py) carries these records, so its score can be traced to the exact
command, source commit and CPU that produced it.
"""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import torch

# CPU flags that decide a run's speed and arithmetic (oneDNN's kernels, bfloat16 autocast's default).
SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
_CLI = (Path(__file__).resolve().parent.parent / "cli.py")


def segment_record(frames: int) -> dict:
    """What started this process's training segment at `frames` (per game)."""
    return {"started": utc_now(), "frames": int(frames), "command": command_line(), **source_commit(),
            "machine": machine(), "torch": torch.__version__, "python": platform.python_version()}


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def command_line() -> str:
    """This process's command line, as a shell would take it (the console script's name, not its path)."""
    argv = list(sys.argv) or [""]
    program = Path(argv[0])
    # `python -m actormimic_fast.cli` is the console script by another name
    argv[0] = "actormimic-fast" if program.resolve() == _CLI else program.name
    return shlex.join(argv)


@lru_cache(maxsize=1)
def source_commit() -> dict:
    """{"commit": the git commit of the package's source, "dirty": tracked files changed since} when the
    package runs from a git work tree (an editable install), else {"commit": None, "version": ...}."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
        return {"commit": commit, "dirty": bool(status.strip())}
    except (OSError, subprocess.SubprocessError):
        from importlib import metadata

        try:
            version = metadata.version("actormimic_fast")
        except metadata.PackageNotFoundError:
            version = None
        return {"commit": None, "version": version}


@lru_cache(maxsize=1)
def machine() -> dict:
    """The CPU (model, cores, the flags in SPEED_FLAGS it has), torch's threads and the GPU if any."""
    model, flags = platform.processor() or "unknown", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model in ("unknown", "", "x86_64"):
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    record = {"cpu": model, "cores": os.cpu_count(), "threads": torch.get_num_threads(),
              "cpu_flags": [flag for flag in SPEED_FLAGS if flag in flags]}
    if torch.cuda.is_available():
        record["gpu"] = torch.cuda.get_device_name(0)
    return record
