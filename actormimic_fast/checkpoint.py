"""Checkpoints: written atomically, loaded without unpickling arbitrary objects, checked on load.

A checkpoint is a dict saved with torch.save and read back with ``torch.load(weights_only=True)``: only
tensors, numbers, strings, lists and dicts, never code. ``meta`` records what the weights are for
(kind, games, action sets, architecture) so loading them into the wrong game or network raises.
Writes go to a temporary file in the same folder, are fsynced, then renamed over the target: a run
killed at any moment leaves either the old or the new checkpoint, never a torn one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"   # a run folder's checkpoint file


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Atomically write {"format": 1, "meta": meta, **state} to path; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT_VERSION, "meta": meta, **state}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)
    return path


def load_checkpoint(path: str | os.PathLike, expect: dict[str, Any] | None = None,
                    map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint (tensors and plain data only) and check ``meta`` against ``expect``.

    Raises FileNotFoundError for a missing file, ValueError for a file that is not a checkpoint of this
    package or whose meta differs from expect (e.g. another game, action set or architecture).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle errors, truncated files, foreign objects
        raise ValueError(f"{str(path)!r} is not a readable actormimic_fast checkpoint: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION or "meta" not in payload:
        raise ValueError(f"{str(path)!r} is not an actormimic_fast checkpoint (format {FORMAT_VERSION})")
    for key, wanted in (expect or {}).items():
        found = payload["meta"].get(key)
        if found != wanted:
            raise ValueError(f"checkpoint {str(path)!r} was made for {key}={found!r}, not {key}={wanted!r}")
    return payload
