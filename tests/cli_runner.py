"""Run `python -m actormimic_fast.cli` in a subprocess, as a user would; shared by the command-line tests."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, check: bool = True, timeout: float = 240, **env) -> subprocess.CompletedProcess:
    """The finished process (text stdout/stderr); with check, AssertionError showing both unless it exited 0.
    Keyword arguments are extra environment variables (e.g. OMP_NUM_THREADS="1")."""
    environ = dict(os.environ, PYTHONPATH=str(ROOT), **env)
    proc = subprocess.run([sys.executable, "-m", "actormimic_fast.cli", *map(str, args)], capture_output=True,
                          text=True, env=environ, timeout=timeout, cwd=ROOT)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def cli_summary(*args, timeout: float = 240, **env) -> dict:
    """Run a training command that must succeed; its summary (the last stdout line, JSON)."""
    return json.loads(run_cli(*args, timeout=timeout, **env).stdout.strip().splitlines()[-1])
