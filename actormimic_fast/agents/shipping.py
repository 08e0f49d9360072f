"""Shipping an expert: a finished training run -> a small folder anyone can load, play and distil, with where it
came from and the checks that it still plays.

    folder = ship_expert("~/runs/pqn-pong", "experts/table1/pong")     # `actormimic-fast ship-expert`
    network, meta = load_expert(folder / "expert.pt", game="pong")      # the normal loader: nothing new to learn
    shipped = read_shipped(folder)                                      # run.json's "shipped" record

A shipped expert folder holds:
    expert.pt      the online network's weights in float16 (3.4 MB for the Nature network) and the checkpoint's
                   meta (kind, game, action set, architecture): evaluate, play, distill and transfer take it as
                   they take any expert checkpoint; load_expert turns the weights back into float32.
    run.json       the run's own run.json (one record per training segment: command, commit, machine, date;
                   files/provenance.py) and "shipped": settings, frames, wall time, the checks below, who shipped.
    test.csv       the run's test epochs (mean and max per epoch, the paper's protocol), so `report` reads the
    progress.csv   folder as a run: the experts' table and curves against frames and wall-clock.

A run that started from a shipped expert's weights (train-expert --init <folder>) continues that expert's
training: the trainer keeps the folder's run.json, test.csv and progress.csv in <run>/init/ (keep_init_logs),
and shipping it writes one history. "shipped" gets "init" (the earlier expert's shipped record and training
segments) and counts its frames and wall time in "frames" and "wall_s" ("frames_this_run" and
"wall_s_this_run" are the run's own); test.csv and progress.csv are the earlier logs followed by the run's,
whose frames, epochs and wall_s continue from where the earlier ones stopped.

The checks made when shipping, recorded in "shipped":
    fidelity     the 16-bit network's greedy action against the float32 one's on states of the game (played
                 by the float32 network, epsilon 0.05), and the largest Q-value difference;
    random       random play on the paper's test protocol (the "random" column beside the expert's score);
    check        a short greedy game (check_frames from seed 0), its reward and random play's on the same
                 budget (random_seeds seeds): when the expert's beats random's best, `threshold` is halfway
                 between and the CI test (tests/test_shipped_experts.py) requires the greedy game to reach it
                 on any CPU; otherwise the budget cannot tell the expert from random and threshold is None.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import torch

from ..files.checkpoint import CHECKPOINT_NAME, load_checkpoint, restore, save_checkpoint
from ..files.json_values import jsonable
from ..files.provenance import command_line, machine, source_commit, utc_now
from ..files.run_info import RUN_INFO, read_run_info
from ..models.networks import build_network
from ..run.evaluation import evaluate, greedy_act

EXPERT_FILE = "expert.pt"
WEIGHT_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}
LOGS = ("test.csv", "progress.csv")
LAST_EPOCHS = 3            # a shipped expert's score: the mean of its last 3 test epochs (issue 25's bar)
INIT_FOLDER = "init"       # in a run folder: the records and logs of the shipped expert its weights started from


def ship_expert(run_folder: str | Path, out: str | Path, *, dtype: str = "float16", check_frames: int = 2_000,
                random_seeds: int = 5, fidelity_frames: int = 20_000, note: str | None = None) -> Path:
    """Write the shipped-expert folder `out` from the expert run in run_folder (its checkpoint.pt, run.json,
    test.csv and progress.csv); returns out. ValueError, naming the argument, for a run that is not an expert,
    a weight that 16 bits cannot hold, or bad settings."""
    run_folder, out = Path(run_folder).expanduser(), Path(out)
    checkpoint, payload, info = read_run_to_ship(run_folder, "expert", dtype, check_frames=check_frames,
                                                 random_seeds=random_seeds, fidelity_frames=fidelity_frames)
    meta, config, counters = payload["meta"], payload["config"], payload["counters"]
    game, legal = meta["game"], meta["actions"]

    weights = _to_16_bits(payload["online"], WEIGHT_DTYPES[dtype], checkpoint)
    full, shipped_network = (build_network(meta["architecture"], meta["num_actions"]) for _ in range(2))
    restore(full, payload["online"], checkpoint, "online")      # the checkpoint is read once
    restore(shipped_network, weights, checkpoint, "online")
    full.eval(), shipped_network.eval()

    init = _init_record(run_folder)
    earlier_frames, earlier_wall_s = (init["frames"], init["wall_s"]) if init else (0, 0.0)
    frames, wall_s = int(counters["frames"]), float(counters.get("wall_s", math.nan))
    logs = {log: _continued_log(run_folder, log, init, up_to=frames) for log in LOGS}

    frame_skip, seed = int(config.get("frame_skip", 4)), int(config.get("seed", 0))
    env = dict(frame_skip=frame_skip, noop_max=int(config.get("noop_max", 30)),
               max_episode_frames=int(config.get("max_episode_frames", 108_000)))
    random_budget = int(config.get("test_epoch_frames", 125_000))
    record = {
        "date": utc_now(), "command": command_line(), **source_commit(), "machine": machine(), "note": note,
        "from": str(run_folder.resolve()), "algorithm": info.get("algorithm", "dqn"), "weights": dtype,
        "frames": earlier_frames + frames, "wall_s": earlier_wall_s + wall_s,
        **({"init": init, "frames_this_run": frames, "wall_s_this_run": wall_s} if init else {}),
        "settings": config, "test": _test_summary(logs["test.csv"]),
        "fidelity": _fidelity(full, shipped_network, game, legal, fidelity_frames, seed, env),
        "random": _summary(evaluate(None, [game], frames_per_game=random_budget, epsilon=1.0,
                                    envs_per_game=8, seed=seed + 7, **env)[game]),
        "check": greedy_check(shipped_network, game, legal, check_frames, random_seeds, env),
    }

    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / EXPERT_FILE, {"online": weights}, {**meta, "weights": dtype})
    for log, (fields, rows) in logs.items():
        _write_csv(out / log, fields, rows)
    (out / RUN_INFO).write_text(json.dumps({**info, "shipped": record}, indent=2, sort_keys=True) + "\n")
    return out


def read_run_to_ship(run_folder: Path, kind: str, dtype: str, **counts: int) -> tuple[Path, dict, dict]:
    """The checkpoint path, checkpoint and run.json of a run folder about to be shipped (ship_expert, ship_amn);
    ValueError naming the argument for a dtype or count (>= 1) out of range, a checkpoint of another kind or a
    run without its logs."""
    if dtype not in WEIGHT_DTYPES:
        raise ValueError(f"dtype must be one of {sorted(WEIGHT_DTYPES)}, got {dtype!r}")
    for name, value in counts.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    checkpoint = run_folder / CHECKPOINT_NAME
    payload = load_checkpoint(checkpoint, expect={"kind": kind}, require=("online", "counters", "config"))
    info = read_run_info(run_folder)
    for log in LOGS:
        if not (run_folder / log).is_file():
            raise ValueError(f"run_folder {str(run_folder)!r} has no {log}: ship a run that finished a test epoch")
    return checkpoint, payload, info


def read_shipped(folder: str | Path, weights: str = EXPERT_FILE, what: str = "expert") -> dict:
    """The "shipped" record of a shipped-expert folder (or, with weights="amn.pt", a shipped AMN's);
    ValueError naming the folder when it is not one."""
    folder = Path(folder)
    info = read_run_info(folder)
    if "shipped" not in info or not (folder / weights).is_file():
        raise ValueError(f"{str(folder)!r} is not a shipped {what} (no {weights} or no 'shipped' in {RUN_INFO})")
    return info["shipped"]


def greedy_check(network: torch.nn.Module, game: str, legal, frames: int, random_seeds: int, env: dict,
                 seed: int = 0) -> dict:
    """The short greedy game of a shipped expert against random play on the same budget (module docstring)."""
    reward = play_greedy(network, game, legal, frames, env, seed)
    random = [evaluate(None, [game], frames_per_game=frames, epsilon=1.0, seed=seed + s, **env)[game].reward
              for s in range(random_seeds)]
    shows = reward > max(random)
    return {"frames": frames, "seed": seed, "epsilon": 0.0, "reward": reward, "random_rewards": random,
            "threshold": (reward + max(random)) / 2 if shows else None}


def play_greedy(network: torch.nn.Module, game: str, legal, frames: int, env: dict, seed: int = 0) -> float:
    """The reward of one greedy game of `frames` emulator frames from `seed` (finished episodes or not)."""
    return evaluate(greedy_act(network, legal), [game], frames_per_game=frames, epsilon=0.0, seed=seed,
                    **env)[game].reward


def _to_16_bits(state: dict, dtype: torch.dtype, checkpoint: Path) -> dict:
    weights = {}
    for key, tensor in state.items():
        if not tensor.is_floating_point():
            weights[key] = tensor
            continue
        half = tensor.to(dtype)
        if not torch.isfinite(half).all():
            raise ValueError(f"checkpoint {str(checkpoint)!r}: weight {key!r} (largest magnitude "
                             f"{tensor.abs().max().item():.4g}) does not fit {dtype}; try dtype='bfloat16'")
        weights[key] = half
    return weights


@torch.no_grad()
def _fidelity(full: torch.nn.Module, shipped: torch.nn.Module, game: str, legal, frames: int, seed: int,
              env: dict) -> dict:
    """How far the 16-bit network acts from the float32 one, on states the float32 one reaches."""
    legal_t = torch.as_tensor(np.asarray(legal), dtype=torch.int64)
    same, states, q_error, q_scale = 0, 0, 0.0, 0.0

    def act(obs: torch.Tensor, game_ids: torch.Tensor) -> np.ndarray:
        nonlocal same, states, q_error, q_scale
        q_full, q_shipped = full(obs), shipped(obs)
        same += int((q_full.argmax(1) == q_shipped.argmax(1)).sum())
        states += len(obs)
        q_error = max(q_error, float((q_full - q_shipped).abs().max()))
        q_scale = max(q_scale, float(q_full.abs().max()))
        return legal_t[q_full.argmax(1)].numpy()

    evaluate(act, [game], frames_per_game=frames, epsilon=0.05, seed=seed + 11, **env)
    return {"states": states, "agreement": same / states, "max_q_error": q_error, "max_abs_q": q_scale}


def _summary(result) -> dict:
    return {"episodes": result.episodes, "mean": jsonable(result.mean), "max": jsonable(result.max),
            "frames": result.frames}


def keep_init_logs(init_folder: Path, out: Path) -> None:
    """Copy the records and logs of the shipped expert in init_folder to <out>/init/ when a run starts from its
    weights (nothing when init_folder is not a shipped expert's folder: a run's own checkpoint, say)."""
    try:
        read_shipped(init_folder)
    except (ValueError, FileNotFoundError):
        return
    keep = Path(out) / INIT_FOLDER
    keep.mkdir(parents=True, exist_ok=True)
    for name in (RUN_INFO, *LOGS):
        if (init_folder / name).is_file():
            shutil.copyfile(init_folder / name, keep / name)


def _init_record(run_folder: Path) -> dict | None:
    """What run_folder's weights started from (<run>/init/, kept by keep_init_logs): the earlier expert's
    shipped record and segments, its frames and wall time (its own earlier ones included); None if nothing."""
    folder = run_folder / INIT_FOLDER
    if not (folder / RUN_INFO).is_file():
        return None
    info = read_run_info(folder)
    shipped = info.get("shipped", {})
    return {"frames": int(shipped.get("frames", 0)), "wall_s": float(shipped.get("wall_s", 0.0)),
            "shipped": {k: v for k, v in shipped.items() if k != "settings"}, "segments": info.get("segments", [])}


def _continued_log(run_folder: Path, log: str, init: dict | None, up_to: int) -> tuple[list[str], list[dict]]:
    """The fields and rows of run_folder's log up to the checkpoint's frames `up_to` (a run killed after its
    last checkpoint logged rows the shipped weights never saw), after the init expert's when there is one:
    the run's frames, epochs and wall_s go on from the init's (module docstring)."""
    fields, rows = _read_csv(run_folder / log)
    rows = [r for r in rows if not r.get("frames") or int(float(r["frames"])) <= up_to]
    if init is None or not (run_folder / INIT_FOLDER / log).is_file():
        return fields, rows
    earlier_fields, earlier = _read_csv(run_folder / INIT_FOLDER / log)
    epochs = max((int(r["epoch"]) for r in earlier if r.get("epoch")), default=0)
    offsets = {"frames": init["frames"], "epoch": epochs, "wall_s": init["wall_s"]}
    for row in rows:
        for key, offset in offsets.items():
            if row.get(key) not in (None, ""):
                number = float(row[key]) + offset
                row[key] = str(int(number)) if key != "wall_s" else f"{number:g}"
    return earlier_fields + [f for f in fields if f not in earlier_fields], earlier + rows


def _read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def _write_csv(path: Path, fields: list[str], rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows)


def _test_summary(log: tuple[list[str], list[dict]]) -> dict:
    """The run's score: the mean of its last LAST_EPOCHS test epochs with a finished episode, and its best epoch
    and episode (None when no test episode finished)."""
    rows = log[1]
    finished = [r for r in rows if r.get("mean") not in (None, "", "nan")]
    means = [float(r["mean"]) for r in finished]
    return {"epochs": len(rows), "last_frames": int(rows[-1]["frames"]) if rows else 0,
            f"mean_last_{LAST_EPOCHS}": float(np.mean(means[-LAST_EPOCHS:])) if means else None,
            "best_mean": max(means, default=None),
            "best_max": max((float(r["max"]) for r in finished), default=None)}

