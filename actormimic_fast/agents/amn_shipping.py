"""Shipping an AMN: a finished distillation run -> a small folder to commit beside the shipped experts, with
where it came from and a check that it still acts like its experts (agents/shipping.py does the same for an
expert, and this file shares its 16-bit conversion and logs).

    folder = ship_amn("~/runs/amn", "experts/amn")                   # `actormimic-fast ship-amn`
    network, meta = load_amn(folder / "amn.pt")                       # the normal loader (float32 again)
    shipped = read_shipped_amn(folder)                                # run.json's "shipped" record

A shipped AMN folder holds amn.pt (the AMN's weights in float16 and the checkpoint's meta: games, action sets,
architecture: `play`, `evaluate` and `transfer` take it as any AMN checkpoint), test.csv and progress.csv (so
`report` reads the folder as the run: Table 1 and its curves), and run.json: the run's segments and "shipped":
settings, frames per game, wall time, each game's test summary (AMN and expert), and per game

    experts      the expert distilled (its path as the run named it, its file's SHA-256, its shipped score);
    fidelity     the 16-bit AMN's greedy action against the float32 one's on states the float32 AMN reaches;
    check        on the states the expert reaches (check_frames from a seed, epsilon 0.05), the share where
                 the shipped AMN's greedy action is the expert's, and a threshold below it (THRESHOLD_MARGIN)
                 that tests/test_shipped_amn.py requires on any CPU when it replays the same game.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import torch

from ..files.checkpoint import restore, save_checkpoint
from ..files.provenance import command_line, machine, source_commit, utc_now
from ..files.run_info import RUN_INFO, read_run_info
from ..models.networks import build_network
from ..run.evaluation import evaluate
from .distill import action_masks
from .dqn import load_expert
from .shipping import LOGS, WEIGHT_DTYPES, _read_csv, _test_summary, _to_16_bits, read_run_to_ship, read_shipped

AMN_FILE = "amn.pt"
THRESHOLD_MARGIN = 0.05     # the CI check's slack below the agreement measured when shipping (another CPU's
                            # rounding can turn a near-tie; the expert's own trajectory is the same states)


def ship_amn(run_folder: str | Path, out: str | Path, *, dtype: str = "float16", check_frames: int = 4_000,
             fidelity_frames: int = 4_000, note: str | None = None) -> Path:
    """Write the shipped-AMN folder `out` from the distillation run in run_folder; returns out. ValueError,
    naming the argument, for a run that is not an AMN's, an expert file that is gone, or bad settings."""
    run_folder, out = Path(run_folder).expanduser(), Path(out)
    checkpoint, payload, info = read_run_to_ship(run_folder, "amn", dtype, check_frames=check_frames,
                                                 fidelity_frames=fidelity_frames)
    meta, config, counters = payload["meta"], payload["config"], payload["counters"]
    games, masks = list(meta["games"]), action_masks(meta["actions"])
    expert_paths = dict(zip(games, [p for p in str(config.get("experts", "")).split(",") if p]))

    weights = _to_16_bits(payload["online"], WEIGHT_DTYPES[dtype], checkpoint)
    full, shipped_network = (build_network(meta["architecture"], meta["num_actions"]) for _ in range(2))
    restore(full, payload["online"], checkpoint, "online")
    restore(shipped_network, weights, checkpoint, "online")
    full.eval(), shipped_network.eval()
    experts = {}
    for game in games:
        path = Path(expert_paths.get(game, ""))
        if not path.is_file():
            raise ValueError(f"run_folder {str(run_folder)!r}: the {game} expert it distilled, "
                             f"{str(path)!r}, is not there (ship from where the experts are)")
        experts[game] = path

    env = dict(frame_skip=int(config.get("frame_skip", 4)), noop_max=int(config.get("noop_max", 30)),
               max_episode_frames=int(config.get("max_episode_frames", 108_000)))
    seed = int(config.get("seed", 0))
    _, test_rows = _read_csv(run_folder / "test.csv")
    loaded = [load_expert(experts[g], game=g) for g in games]
    checks = amn_agreement(shipped_network, masks, games, [network for network, _ in loaded],
                           [expert_meta["actions"] for _, expert_meta in loaded], check_frames, seed, env)
    record = {
        "date": utc_now(), "command": command_line(), **source_commit(), "machine": machine(), "note": note,
        "from": str(run_folder.resolve()), "weights": dtype, "games": games,
        "frames": int(counters["frames"]), "wall_s": float(counters.get("wall_s", float("nan"))),
        "settings": config,
        "experts": {g: {"path": expert_paths[g], "sha256": sha256(experts[g]), "shipped": _expert_score(experts[g])}
                    for g in games},
        "test": {g: {policy: _test_summary((None, [r for r in test_rows if r["game"] == g and r["policy"] == policy]))
                     for policy in ("amn", "expert")} for g in games},
        "fidelity": _fidelity(full, shipped_network, masks, games, fidelity_frames, seed, env),
        "check": {g: {**c, "threshold": max(0.0, c["agreement"] - THRESHOLD_MARGIN)} for g, c in checks.items()},
    }

    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / AMN_FILE, {"online": weights}, {**meta, "weights": dtype})
    for log in LOGS:
        shutil.copyfile(run_folder / log, out / log)
    (out / RUN_INFO).write_text(json.dumps({**info, "shipped": record}, indent=2, sort_keys=True) + "\n")
    return out


def read_shipped_amn(folder: str | Path) -> dict:
    """The "shipped" record of a shipped-AMN folder; ValueError naming the folder when it is not one."""
    return read_shipped(folder, AMN_FILE, "AMN")


@torch.no_grad()
def amn_agreement(amn: torch.nn.Module, masks: np.ndarray, games: list[str], experts: list[torch.nn.Module],
                  expert_actions: list, frames: int, seed: int, env: dict) -> dict[str, dict]:
    """Per game: the share of the states its expert reaches (the experts play all games at once in one pool,
    `frames` per game from `seed`, epsilon 0.05) where the AMN's greedy action over the game's legal set is
    the expert's greedy action."""
    masks_t = torch.as_tensor(masks)
    legal = [torch.as_tensor(np.asarray(a), dtype=torch.int64) for a in expert_actions]
    same, states = np.zeros(len(games), np.int64), np.zeros(len(games), np.int64)

    def act(obs: torch.Tensor, game_ids: torch.Tensor) -> np.ndarray:
        logits = amn(obs).masked_fill(~masks_t[game_ids], float("-inf"))
        amn_action = logits.argmax(1)
        actions = torch.zeros(len(obs), dtype=torch.int64)
        for g, expert in enumerate(experts):
            rows = torch.nonzero(game_ids == g).flatten()
            if len(rows):
                actions[rows] = legal[g][expert(obs[rows]).argmax(1)]
                same[g] += int((amn_action[rows] == actions[rows]).sum())
                states[g] += len(rows)
        return actions.numpy()

    evaluate(act, games, frames_per_game=frames, epsilon=0.05, seed=seed + 13, **env)
    return {g: {"frames": frames, "seed": seed + 13, "epsilon": 0.05, "states": int(states[i]),
                "agreement": float(same[i] / max(states[i], 1))} for i, g in enumerate(games)}


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _expert_score(path: Path) -> dict | None:
    """The shipped score of the expert file at path when it is a shipped expert's (None otherwise)."""
    try:
        shipped = read_run_info(path.parent).get("shipped")
    except FileNotFoundError:
        return None
    if not shipped:
        return None
    return {"frames": shipped.get("frames"), "test": shipped.get("test"), "commit": shipped.get("commit")}


@torch.no_grad()
def _fidelity(full: torch.nn.Module, shipped: torch.nn.Module, masks: np.ndarray, games: list[str], frames: int,
              seed: int, env: dict) -> dict[str, dict]:
    """Per game, how far the 16-bit AMN acts from the float32 one, on states the float32 one reaches."""
    masks_t = torch.as_tensor(masks)
    same, states = np.zeros(len(games), np.int64), np.zeros(len(games), np.int64)
    logit_error = np.zeros(len(games))

    def act(obs: torch.Tensor, game_ids: torch.Tensor) -> np.ndarray:
        legal = masks_t[game_ids]
        logits_full, logits_shipped = full(obs), shipped(obs)
        greedy_full = logits_full.masked_fill(~legal, float("-inf")).argmax(1)
        greedy_shipped = logits_shipped.masked_fill(~legal, float("-inf")).argmax(1)
        error = ((logits_full - logits_shipped).abs() * legal).amax(1).numpy()     # over the legal actions
        ids = game_ids.numpy()
        np.add.at(same, ids, (greedy_full == greedy_shipped).numpy())
        np.add.at(states, ids, 1)
        np.maximum.at(logit_error, ids, error)
        return greedy_full.numpy()

    evaluate(act, games, frames_per_game=frames, epsilon=0.05, seed=seed + 11, **env)
    return {g: {"states": int(states[i]), "agreement": float(same[i] / max(states[i], 1)),
                "max_logit_error": float(logit_error[i])} for i, g in enumerate(games)}
