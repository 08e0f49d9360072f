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


# What the loaders and a resumed run read, and the type each must have.
_SHAPES = {"online": "weights", "target": "weights", "feature_heads": "weights by game", "optimizer": "optimizer",
           "counters": "dict", "rng": "dict", "config": "dict"}
RESUME_KEYS = ("online", "optimizer", "counters", "rng", "config")   # every trainer's resumed checkpoint


def remove_stale_temp_files(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files a killed save_checkpoint(path) left (same folder, ``.<name>.*.tmp``)."""
    path = Path(path)
    stale = sorted(path.parent.glob(f".{path.name}.*.tmp")) if path.parent.is_dir() else []
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


def load_checkpoint(path: str | os.PathLike, expect: dict[str, Any] | None = None,
                    map_location: str | torch.device = "cpu", require: tuple[str, ...] = (),
                    mmap: bool = False) -> dict[str, Any]:
    """Load a checkpoint (tensors and plain data only), check ``meta`` against ``expect`` and that the keys
    in ``require`` are there with the right types.

    Raises FileNotFoundError for a missing file and ValueError, naming the file and the key, for a folder,
    a file that is not a checkpoint of this package, a meta that differs from expect (e.g. another game,
    action set or architecture) or a missing or malformed key. mmap=True maps the file instead of reading
    it (cheap when only the meta or the config is needed).
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"checkpoint {str(path)!r} is a folder, not a checkpoint file "
                         f"(a run folder's checkpoint is {str(path / CHECKPOINT_NAME)!r})")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as exc:  # pickle errors, truncated files, foreign objects
        raise ValueError(f"{str(path)!r} is not a readable actormimic_fast checkpoint: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION or "meta" not in payload:
        raise ValueError(f"{str(path)!r} is not an actormimic_fast checkpoint (format {FORMAT_VERSION})")
    if not isinstance(payload["meta"], dict):
        raise ValueError(f"checkpoint {str(path)!r}: 'meta' must be a dict, got {type(payload['meta']).__name__}")
    for key, wanted in (expect or {}).items():
        found = payload["meta"].get(key)
        if found != wanted:
            raise ValueError(f"checkpoint {str(path)!r} was made for {key}={found!r}, not {key}={wanted!r}")
    for key in require:
        _check_entry(path, payload, key)
    return payload


def _check_entry(path: Path, payload: dict, key: str) -> None:
    if key not in payload:
        raise ValueError(f"checkpoint {str(path)!r} has no {key!r} (it holds {sorted(payload)})")
    value, shape = payload[key], _SHAPES.get(key, "dict")
    if shape == "weights":
        ok = isinstance(value, dict) and all(isinstance(t, torch.Tensor) for t in value.values())
    elif shape == "weights by game":
        ok = isinstance(value, dict) and all(isinstance(h, dict) and all(isinstance(t, torch.Tensor)
                                                                         for t in h.values()) for h in value.values())
    elif shape == "optimizer":
        ok = isinstance(value, dict) and isinstance(value.get("state"), dict) and isinstance(
            value.get("param_groups"), list)
    else:
        ok = isinstance(value, dict)
    if not ok:
        raise ValueError(f"checkpoint {str(path)!r}: {key!r} is malformed (expected {shape}, got "
                         f"{type(value).__name__})")


def meta_value(path: str | os.PathLike, meta: dict, key: str):
    """meta[key], or ValueError naming the checkpoint file and the missing key."""
    if key not in meta:
        raise ValueError(f"checkpoint {str(path)!r}: its meta has no {key!r} (it holds {sorted(meta)})")
    return meta[key]


def check_actions(folder: str | os.PathLike, payload: dict, meta: dict) -> None:
    """A resumed checkpoint (payload, read from folder's checkpoint) must be for the action sets the run's pool
    has now (meta["actions"], the meta the run would write)."""
    path = Path(folder) / CHECKPOINT_NAME
    saved = meta_value(path, payload["meta"], "actions")
    if saved != meta["actions"]:
        raise ValueError(f"checkpoint {str(path)!r} has actions {saved}, the games' legal actions are "
                         f"{meta['actions']}")


def restore(target, state, path: str | os.PathLike, key: str) -> None:
    """target.load_state_dict(state) (a module or an optimiser), with a mismatch reported as ValueError naming
    the checkpoint file and its key.

    An optimiser gets back its state (moments, step counts) but keeps the hyperparameters it was built with
    (lr, eps, betas, momentum): those are this run's settings, so `--resume --lr 1e-4` lowers the learning rate
    instead of being overwritten by the saved param_groups. A plain resume builds them from the saved config."""
    settings = None
    if isinstance(target, torch.optim.Optimizer):
        settings = [{k: v for k, v in group.items() if k != "params"} for group in target.param_groups]
    try:
        target.load_state_dict(state)
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise ValueError(f"checkpoint {str(path)!r}: {key!r} does not fit this run's "
                         f"{type(target).__name__}: {exc}") from exc
    if settings is not None:
        for group, values in zip(target.param_groups, settings):
            group.update(values)
