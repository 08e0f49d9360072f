"""The expert DQN's settings: one dataclass, faithful to Mnih et al. 2015 by default (SPEC section 1).

Units. ``frames`` are *emulator* frames, as in the Actor-Mimic paper: one agent step is ``frame_skip`` (4)
frames. Settings the paper states in agent steps or updates say so in their name (``learning_starts``
is in agent steps, ``target_update`` in gradient updates, ``update_every`` in agent steps).

The Nature paper's table counts "frames" as agent steps in some rows; this package follows the wording
of SPEC section 1 (``epsilon_decay_frames = 1M`` emulator frames). DeepMind's Lua code annealed epsilon
over 1M *agent steps*: set ``epsilon_decay_frames = 4M`` to match it.

    cfg = DQNConfig.from_toml("pong.toml", overrides={"frames": "10M", "double_dqn": True})
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .sizes import parse_count


def setting(default, help: str, count: bool = False, choices: tuple | None = None):
    """A dataclass field with its documentation (shown by --help) and how to parse it."""
    return field(default=default, metadata={"help": help, "count": count, "choices": choices})


_f = setting


class Settings:
    """What every run's config dataclass shares: parsing from dicts, TOML and the command line.

    A subclass is a @dataclass of setting(...) fields, names its TOML table (TOML_TABLE: a file's
    [TOML_TABLE] table is read, or its top level when it has none) and checks itself in validate().
    """

    TOML_TABLE = ""

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        for f in fields(self):
            if f.metadata.get("choices"):
                self.need(getattr(self, f.name) in f.metadata["choices"], f.name, f"one of {f.metadata['choices']}")

    def need(self, ok: bool, name: str, rule: str) -> None:
        """ValueError naming the setting and its value unless ok."""
        if not ok:
            raise ValueError(f"{name} must be {rule}, got {getattr(self, name)!r}")

    @classmethod
    def field_help(cls) -> dict[str, dict]:
        return {f.name: dict(f.metadata, type=f.type, default=f.default) for f in fields(cls)}

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config"):
        """A config from defaults updated by values (strings like '10M' accepted for counts)."""
        known = {f.name: f for f in fields(cls)}
        kwargs = {}
        for key, value in values.items():
            name = key.replace("-", "_")
            if name not in known:
                raise ValueError(f"{source}: unknown setting {key!r}; valid settings are: {', '.join(known)}")
            kwargs[name] = coerce(known[name], value, source)
        return cls(**kwargs)

    @classmethod
    def toml_values(cls, path: str | Path) -> dict[str, Any]:
        """The settings in a TOML file: its [TOML_TABLE] table, or its top level."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {str(path)!r} does not exist")
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"config file {str(path)!r} is not valid TOML: {exc}") from exc
        return dict(data.get(cls.TOML_TABLE, data)) if cls.TOML_TABLE else data

    @classmethod
    def from_toml(cls, path: str | Path | None, overrides: dict[str, Any] | None = None):
        """Defaults, then the TOML file's settings (see toml_values), then overrides."""
        values: dict[str, Any] = dict(cls.toml_values(path)) if path is not None else {}
        values.update(overrides or {})
        return cls.from_dict(values, source=str(path) if path else "config")

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class DQNConfig(Settings):
    """Every setting of an expert DQN run; defaults are the faithful preset (SPEC section 1)."""

    # -- what and how long ----------------------------------------------------------------------
    game: str = _f("pong", "game to train on (ale-py ROM id, e.g. pong, space_invaders)")
    frames: int = _f(10_000_000, "training length in emulator frames (agent steps x frame_skip)", count=True)
    seed: int = _f(0, "seed of the envs, the network initialisation, exploration and replay sampling")
    device: str = _f("auto", "torch device: auto (cuda when available), cpu, cuda, cuda:1, ...")
    # -- environment ----------------------------------------------------------------------------
    num_envs: int = _f(1, "envs of the game stepped by the pool; updates per agent step stay 1/update_every")
    env_threads: int = _f(0, "pool worker threads (0: one per env, at most the CPU count)")
    frame_skip: int = _f(4, "emulator frames per agent step (max over the last two)")
    noop_max: int = _f(30, "up to this many random no-op frames at every episode start")
    max_episode_frames: int = _f(108_000, "episode cap in emulator frames (30 minutes)", count=True)
    # -- network and learning -------------------------------------------------------------------
    architecture: str = _f("nature", "network: nature (Mnih et al. 2015) or large (appendix D)",
                           choices=("nature", "large"))
    replay_capacity: int = _f(1_000_000, "replay memory size in transitions", count=True)
    batch_size: int = _f(32, "minibatch size")
    gamma: float = _f(0.99, "discount")
    n_step: int = _f(1, "rewards per return (1: the paper's one-step Q-learning)")
    double_dqn: bool = _f(False, "Double DQN target (van Hasselt et al. 2016): online argmax, target value")
    loss: str = _f("huber", "huber (TD error clipped to [-1, 1], the paper) or mse", choices=("huber", "mse"))
    loss_reduction: str = _f("sum", "sum over the minibatch (DeepMind's code backpropagates each clipped TD "
                             "error unscaled) or mean", choices=("sum", "mean"))
    reward_clip: float = _f(1.0, "clip each reward to [-c, c] at sample time (0: no clipping)")
    life_loss_terminal: bool = _f(True, "a lost life ends the return for bootstrapping (episodes go on)")
    optimizer: str = _f("rmsprop", "rmsprop (DeepMind's, centered, eps inside the sqrt), adam (torch.optim.Adam) "
                        "or authors_adam (Actor-Mimic code's variant)", choices=("rmsprop", "adam", "authors_adam"))
    lr: float = _f(2.5e-4, "learning rate")
    rmsprop_momentum: float = _f(0.95, "RMSProp gradient and squared-gradient momentum")
    rmsprop_eps: float = _f(0.01, "RMSProp min squared gradient (inside the square root)")
    adam_eps: float = _f(1.5e-4, "torch Adam epsilon (used with optimizer=adam)")
    target_update: int = _f(10_000, "copy the online network to the target every this many updates", count=True)
    learning_starts: int = _f(50_000, "agent steps of random play before the first update", count=True)
    update_every: int = _f(4, "agent steps (summed over envs) per gradient update")
    epsilon_start: float = _f(1.0, "exploration epsilon at frame 0")
    epsilon_end: float = _f(0.1, "exploration epsilon after the decay")
    epsilon_decay_frames: int = _f(1_000_000, "emulator frames over which epsilon decays linearly", count=True)
    amp: bool = _f(False, "bfloat16 autocast for the forward passes (meant for GPUs)")
    torch_threads: int = _f(0, "torch intra-op threads on CPU (0: the cores the pool's threads leave free, at least 1)")
    # -- evaluation (the paper's protocol) --------------------------------------------------------
    train_epoch_frames: int = _f(250_000, "emulator frames per training epoch; a test epoch follows each",
                                 count=True)
    test_epoch_frames: int = _f(125_000, "emulator frames per test epoch (0: no test epochs)", count=True)
    test_epsilon: float = _f(0.05, "epsilon during test epochs")
    test_envs: int = _f(1, "envs playing each test epoch (they share its frame budget)")
    # -- output ---------------------------------------------------------------------------------
    out: str = _f("runs/expert", "output folder: checkpoints, CSV files, TensorBoard events")
    checkpoint_every: int = _f(1_000_000, "emulator frames between checkpoints (one is also written at the end)",
                               count=True)
    save_replay: bool = _f(False, "put the replay memory in the checkpoint (about 7 KB per transition)")
    log_every: int = _f(10_000, "emulator frames between progress rows (CSV, TensorBoard)", count=True)
    progress: bool = _f(True, "show a progress bar (only on a terminal)")
    tensorboard: bool = _f(True, "write TensorBoard event files")

    TOML_TABLE = "expert"

    # -- checks ------------------------------------------------------------------------------------
    def validate(self) -> None:
        super().validate()
        need = self.need
        for name in ("frames", "num_envs", "frame_skip", "replay_capacity", "batch_size", "n_step",
                     "target_update", "update_every", "train_epoch_frames", "test_envs", "checkpoint_every",
                     "log_every"):
            need(getattr(self, name) >= 1, name, ">= 1")
        for name in ("seed", "env_threads", "noop_max", "max_episode_frames", "learning_starts",
                     "epsilon_decay_frames", "test_epoch_frames", "torch_threads"):
            need(getattr(self, name) >= 0, name, ">= 0")
        for name in ("gamma", "epsilon_start", "epsilon_end", "test_epsilon", "rmsprop_momentum"):
            need(0 <= getattr(self, name) <= 1, name, "in [0, 1]")
        for name in ("lr", "rmsprop_eps", "adam_eps"):
            need(getattr(self, name) > 0, name, "> 0")
        need(self.reward_clip >= 0, "reward_clip", ">= 0 (0 turns clipping off)")
        need(self.batch_size <= self.replay_capacity, "batch_size", f"<= replay_capacity ({self.replay_capacity})")


def coerce(f: dataclasses.Field, value: Any, source: str = "config") -> Any:
    """value (from TOML or the command line) as the type of field f; ValueError naming the field."""
    name, kind = f.name, f.type
    if kind == "int" and f.metadata.get("count"):
        return parse_count(value, name)
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind == "str":
            if not isinstance(value, str):
                raise ValueError
            return value
    except (TypeError, ValueError):
        wanted = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}[kind]
        raise ValueError(f"{source}: {name} must be {wanted}, got {value!r}") from None
    raise TypeError(f"unsupported field type {kind} for {name}")


@dataclass
class TransferConfig(DQNConfig):
    """A DQN run on a target game (SPEC section 3), started from an AMN checkpoint or at random: every
    DQNConfig setting (the expert procedure, the paper's by default), plus where the weights come from."""

    init: str = _f("", "'random' (the baseline) or the path of an AMN checkpoint (from `distill`) whose weights "
                       "start the DQN; required, except to resume a run (its checkpoint holds it)")
    output: str = _f("masked", "output layer of an AMN init: masked (the AMN's rows of the target's legal "
                               "actions, the paper's) or fresh (newly initialised)", choices=("masked", "fresh"))
    architecture: str = _f("auto", "network: auto (the AMN's; nature with init=random), nature or large "
                                   "(appendix D)", choices=("auto", "nature", "large"))
    out: str = _f("runs/transfer", "output folder: checkpoints, CSV files, TensorBoard events")

    TOML_TABLE = "transfer"
    RANDOM_INIT = "random"

    def validate(self) -> None:
        super().validate()
        self.need(bool(self.init), "init", f"{self.RANDOM_INIT!r} or the path of an AMN checkpoint")
