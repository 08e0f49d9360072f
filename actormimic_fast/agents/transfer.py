"""Transfer (Actor-Mimic section 3.4, SPEC section 3): an AMN's weights start a DQN on a new target game.

    summary = train_transfer(TransferConfig(game="breakout", init="runs/amn/checkpoint.pt", out="runs/breakout_amn"))

The paper: "To enable transfer to a new task, we first remove the final softmax layer of the AMN. We then
use the weights of AMN as an instantiation for a DQN that will be trained on the new target task. The
pretrained DQN is then trained using the same training procedure as the one used with a standard DQN."

What is kept and what goes:
- kept: the trunk, every layer up to the pre-output features h(s), parameter by parameter;
- dropped: the softmax (the outputs are read as Q-values from now on) and the feature-regression heads f_i
  (eq. 5), which only served the AMN's training;
- the output layer, by ``output``:
  ``masked`` (default, the paper): the AMN's 18-way output restricted to the target game's legal actions.
  Masking the outputs of a linear layer to actions A is the same as keeping its rows A, so the DQN's output
  i is the AMN's output ``legal_actions[i]`` and the expert trainer, whose outputs index the game's minimal
  action set, trains it unchanged. The paper keeps every AMN weight and removes only the softmax ("use the
  weights of AMN as an instantiation for a DQN"), and its DQNs' "output layers only contain the player
  actions that are valid in the particular game that they are trained on" (appendix B).
  ``fresh``: a newly initialised output layer, the very one a random-init run with the same seed starts
  with, so that the two runs differ only in the trunk.

``init="random"`` is the baseline: the same DQN from random weights. Table 2 compares random, AMN-policy (an
AMN trained with beta = 0) and AMN-feature (beta > 0) inits; run.json's ``init`` says which, for the report.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..files.checkpoint import load_checkpoint, meta_value
from ..native.pool import MultiGameEnvPool
from ..native.games import canonical_name
from ..models.networks import build_network
from ..run.settings import setting as _f
from .dqn import DQNConfig, train_expert

OUTPUTS = ("masked", "fresh")
RANDOM_INIT = "random"


@dataclass
class TransferConfig(DQNConfig):
    """A DQN run on a target game (SPEC section 3), started from an AMN checkpoint or at random: every
    DQNConfig setting (the expert procedure, the paper's by default), plus where the weights come from."""

    init: str = _f("", "'random' (the baseline) or the path of an AMN checkpoint (from `distill`) whose weights "
                       "start the DQN; required, except to resume a run (its checkpoint holds it)")
    output: str = _f("masked", "output layer of an AMN init: masked (the AMN's rows of the target's legal "
                               "actions, the paper's) or fresh (newly initialised)", choices=OUTPUTS)
    architecture: str = _f("auto", "network: auto (the AMN's; nature with init=random), nature or large "
                                   "(appendix D)", choices=("auto", "nature", "large"))
    out: str = _f("runs/transfer", "output folder: checkpoints, CSV files, TensorBoard events")

    TOML_TABLE = "transfer"
    RANDOM_INIT = RANDOM_INIT

    def validate(self) -> None:
        super().validate()
        self.need(bool(self.init), "init", f"{RANDOM_INIT!r} or the path of an AMN checkpoint")


def init_label(amn_meta: dict[str, Any]) -> str:
    """Table 2's name for an AMN init: amn-feature when it was trained with feature regression (beta > 0)."""
    return "amn-feature" if amn_meta.get("beta", 0.0) > 0 else "amn-policy"


def minimal_action_set(game: str) -> np.ndarray:
    """The game's legal actions (full-set indices), in the order the DQN's outputs index them."""
    with MultiGameEnvPool([game], envs_per_game=1, num_threads=1) as pool:
        return pool.legal_actions(0)


def init_from_amn(amn_path: str | os.PathLike, legal_actions, *, output: str = "masked",
                  architecture: str = "auto", seed: int = 0) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The target DQN's initial state_dict (output i plays full action legal_actions[i]) and the AMN's meta.

    The trunk is the AMN's; the output layer is the AMN's rows legal_actions (output="masked") or a fresh
    layer from torch.manual_seed(seed) (output="fresh"); the feature-regression heads are not used.
    Raises FileNotFoundError for a missing file and ValueError for a checkpoint that is not an AMN, an
    architecture other than the AMN's, bad legal_actions or a bad output.
    """
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    payload = load_checkpoint(amn_path, expect={"kind": "amn"}, require=("online",))
    meta = payload["meta"]
    amn_architecture = meta_value(amn_path, meta, "architecture")
    if architecture not in ("auto", amn_architecture):
        raise ValueError(f"architecture={architecture!r}, but the AMN checkpoint {str(amn_path)!r} is a "
                         f"{amn_architecture!r} network; a transfer DQN has its AMN's architecture (use 'auto')")
    legal = np.asarray(legal_actions)
    num_actions = meta_value(amn_path, meta, "num_actions")
    if (legal.ndim != 1 or legal.size == 0 or not np.issubdtype(legal.dtype, np.integer)
            or legal.min() < 0 or legal.max() >= num_actions or len(np.unique(legal)) != legal.size):
        raise ValueError(f"legal_actions must be distinct action indices in [0, {num_actions}), "
                         f"got {legal_actions!r}")

    with torch.random.fork_rng(devices=[]):   # building networks draws random weights: leave the caller's RNG
        amn = build_network(amn_architecture, num_actions)
        torch.manual_seed(seed)
        dqn = build_network(amn_architecture, legal.size)   # seeded as train_expert seeds a random init
    try:
        amn.load_state_dict(payload["online"])
    except RuntimeError as exc:
        raise ValueError(f"AMN checkpoint {str(amn_path)!r}: its weights do not fit a {amn_architecture!r} "
                         f"network with {num_actions} outputs: {exc}") from exc
    dqn.trunk.load_state_dict(amn.trunk.state_dict())
    if output == "masked":
        rows = torch.from_numpy(legal.astype(np.int64))
        dqn.head.load_state_dict({"weight": amn.head.weight.detach()[rows], "bias": amn.head.bias.detach()[rows]})
    return dqn.state_dict(), meta


def transfer_start(cfg: TransferConfig) -> tuple[TransferConfig, dict[str, torch.Tensor] | None, dict[str, Any]]:
    """What train_expert needs to run cfg: the config with its AMN path made absolute and its architecture
    resolved, the initial online weights (None for random) and run.json's labels.

    The AMN is read at every start, resumes included: its meta gives the architecture and the init label,
    and the checkpoint's labels must match them (train_expert checks), so a resume cannot switch AMNs.
    """
    game = canonical_name(cfg.game)
    if cfg.init == RANDOM_INIT:
        architecture = "nature" if cfg.architecture == "auto" else cfg.architecture
        run_info = {"kind": "transfer", "init": RANDOM_INIT, "source": None, "output": None}
        return cfg.replace(game=game, architecture=architecture), None, run_info
    source = str(Path(cfg.init).resolve())
    initial_online, amn_meta = init_from_amn(source, minimal_action_set(game), output=cfg.output,
                                             architecture=cfg.architecture, seed=cfg.seed)
    run_info = {"kind": "transfer", "init": init_label(amn_meta), "source": source, "output": cfg.output,
                "source_games": list(amn_meta["games"]), "beta": float(amn_meta.get("beta", 0.0))}
    resolved = cfg.replace(game=game, init=source, architecture=amn_meta["architecture"])
    return resolved, initial_online, run_info


def train_transfer(cfg: TransferConfig, resume: bool = False) -> dict:
    """Train a DQN on cfg.game from cfg.init with the expert DQN procedure; returns train_expert's summary
    plus the init label. resume=True continues <cfg.out>/checkpoint.pt (the AMN's weights are not applied
    again; the checkpoint must come from the same init and output)."""
    resolved, initial_online, run_info = transfer_start(cfg)
    summary = train_expert(resolved, resume=resume, initial_online=initial_online, run_info=run_info)
    return {"init": run_info["init"], **summary}
