"""Run settings: one dataclass per algorithm, composed from field groups declared once.

A setting is a dataclass field made by ``setting(default, help, ...)``: its help text (shown by --help),
how to parse it (``count=True`` accepts 10M / 250k) and its bounds (``low`` / ``high`` inclusive,
``above`` exclusive, ``choices``), so ``Settings.validate()`` checks every bound and a config's own
``validate()`` keeps only the rules that join several fields.

The groups below (environment, optimiser, Q-learning, compute, evaluation, output) hold the fields several
algorithms share. Frame counts of multi-game runs are per game: a group's help text says
"{per_game}", which each config fills in (PER_GAME) so that --help states its unit.

    cfg = DQNConfig.from_toml("pong.toml", overrides={"frames_per_game": "10M", "double_dqn": True})
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from torch.optim import Optimizer

from ..models.optimizers import OPTIMIZERS, make_optimizer
from ..native.games import canonical_name
from .counts import parse_count


def setting(default, help: str, *, count: bool = False, choices: tuple | None = None, low=None, high=None,
            above=None, note: str = "", names: bool = False):
    """A dataclass field with its documentation, how to parse it and its bounds.

    low / high: inclusive bounds; above: an exclusive lower bound; note: said after the bound in errors;
    names: a comma-separated list (games, paths), accepted as a TOML list too.
    """
    return field(default=default, metadata={"help": help, "count": count, "choices": choices, "low": low,
                                            "high": high, "above": above, "note": note, "names": names})


def split_names(text: str) -> list[str]:
    """'a, b,,c' -> ['a', 'b', 'c']: the items of a comma-separated list setting."""
    return [item.strip() for item in text.split(",") if item.strip()]


def game_names(text: str) -> list[str]:
    """A comma-separated game list as canonical ROM ids ('SpaceInvaders, pong' -> ['space_invaders', 'pong'])."""
    return [canonical_name(g) for g in split_names(text)]


class Settings:
    """What every run's config dataclass shares: bounds checks, parsing from dicts, TOML and the command line.

    A subclass is a @dataclass of setting(...) fields, names its TOML table (TOML_TABLE: a file's
    [TOML_TABLE] table is read, or its top level when it has none) and adds cross-field rules in validate().
    """

    TOML_TABLE = ""
    # old spelling -> setting: still accepted in config files, saved configs and on the command line
    RENAMED: dict[str, str] = {}
    CHECKPOINT_KINDS: tuple[str, ...] = ()   # meta["kind"] of the checkpoints a resumed run of this config reads
    PER_GAME = ""    # said in the help of frame counts: "" for one game, " of each game" for multi-game runs

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Every field's declared bounds; subclasses add the rules that join several fields."""
        for f in fields(self):
            m, value = f.metadata, getattr(self, f.name)
            if m.get("choices"):
                self.need(value in m["choices"], f.name, f"one of {m['choices']}")
            note = f" ({m['note']})" if m.get("note") else ""
            if m.get("low") is not None and m.get("high") is not None:
                self.need(m["low"] <= value <= m["high"], f.name, f"in [{m['low']}, {m['high']}]{note}")
            elif m.get("low") is not None:
                self.need(value >= m["low"], f.name, f">= {m['low']}{note}")
            if m.get("above") is not None:
                self.need(value > m["above"], f.name, f"> {m['above']}{note}")

    def need(self, ok: bool, name: str, rule: str) -> None:
        """ValueError naming the setting and its value unless ok."""
        if not ok:
            raise ValueError(f"{name} must be {rule}, got {getattr(self, name)!r}")

    @classmethod
    def field_help(cls) -> dict[str, dict]:
        """Each field's metadata, type and default; help texts with this config's units filled in."""
        return {f.name: dict(f.metadata, help=f.metadata["help"].format(per_game=cls.PER_GAME), type=f.type,
                             default=f.default) for f in fields(cls)}

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config"):
        """A config from defaults updated by values (strings like '10M' accepted for counts; an old spelling
        of a setting (RENAMED) sets it, and a later key of values wins over an earlier one for the same setting)."""
        known = {f.name: f for f in fields(cls)}
        kwargs = {}
        for key, value in values.items():
            spelled = key.replace("-", "_")
            name = cls.RENAMED.get(spelled, spelled)
            if name not in known:
                raise ValueError(f"{source}: unknown setting {key!r}; valid settings are: {', '.join(known)}")
            kwargs.pop(name, None)
            kwargs[name] = coerce(known[name], value, source, spelled)
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

    @classmethod
    def with_default(cls, name: str, default):
        """This group's setting ``name`` with another default (same help, parsing and bounds), for a config
        whose preset differs: ``adam_eps: float = OptimizerSettings.with_default("adam_eps", 1e-8)``."""
        metadata = next(f.metadata for f in fields(cls) if f.name == name)
        return field(default=default, metadata=metadata)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class GameList:
    """For configs with a comma-separated ``games`` setting: the games as canonical ROM ids."""

    @property
    def game_list(self) -> list[str]:
        return game_names(self.games)


def coerce(f: dataclasses.Field, value: Any, source: str = "config", spelled: str | None = None) -> Any:
    """value (from TOML or the command line) as the type of field f; ValueError naming the field as spelled."""
    name, kind = spelled or f.name, f.type
    if kind == "int" and f.metadata.get("count"):
        return parse_count(value, name)
    if f.metadata.get("names") and isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        value = ",".join(value)
    try:
        if kind in ("bool", "bool | None"):
            if isinstance(value, bool) or (value is None and kind == "bool | None"):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            if text == "auto" and kind == "bool | None":
                return None
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
        wanted = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
                  "bool | None": "true, false or auto"}[kind]
        raise ValueError(f"{source}: {name} must be {wanted}, got {value!r}") from None
    raise TypeError(f"unsupported field type {kind} for {name}")


_f = setting


# -- field groups (each declared once; configs compose them) -------------------------------------------
@dataclass
class EnvSettings(Settings):
    """How the pool plays each env (shared by every trainer)."""

    env_threads: int = _f(0, "pool worker threads (0: one per env, at most the CPU count)", low=0)
    frame_skip: int = _f(4, "emulator frames per agent step (max over the last two)", low=1)
    noop_max: int = _f(30, "up to this many random no-op frames at every episode start", low=0)
    max_episode_frames: int = _f(108_000, "episode cap in emulator frames (30 minutes)", count=True, low=0)


@dataclass
class OptimizerSettings(Settings):
    """The optimiser and its settings (every trainer). Defaults: DeepMind's DQN (the expert and multitask
    DQNs); a config whose preset differs changes a default with OptimizerSettings.with_default."""

    optimizer: str = _f("rmsprop", "rmsprop (DeepMind's, centered, eps inside the sqrt), adam (torch.optim.Adam) "
                                   "or authors_adam (the Actor-Mimic authors' code: beta1 = beta2 = 0.95, eps 0.01 "
                                   "inside the sqrt, no bias correction) or radam (torch.optim.RAdam, PQN's)",
                    choices=OPTIMIZERS)
    lr: float = _f(2.5e-4, "learning rate", above=0)
    rmsprop_momentum: float = _f(0.95, "RMSProp gradient and squared-gradient momentum", low=0, high=1)
    rmsprop_eps: float = _f(0.01, "RMSProp min squared gradient (inside the square root)", above=0)
    adam_eps: float = _f(1.5e-4, "torch Adam / RAdam epsilon (used with optimizer=adam or radam)", above=0)

    def make_optimizer(self, params, capturable: bool = False) -> Optimizer:
        """The optimiser these settings name, over params (capturable: for CUDA graphs)."""
        return make_optimizer(self.optimizer, params, lr=self.lr, rmsprop_momentum=self.rmsprop_momentum,
                              rmsprop_eps=self.rmsprop_eps, adam_eps=self.adam_eps, capturable=capturable)


@dataclass
class QLearningSettings(OptimizerSettings):
    """Q-learning from a replay memory (the expert DQN and the multitask DQN baselines; SPEC section 1)."""

    batch_size: int = _f(32, "minibatch size", low=1)
    gamma: float = _f(0.99, "discount", low=0, high=1)
    n_step: int = _f(1, "rewards per return (1: the paper's one-step Q-learning)", low=1)
    double_dqn: bool = _f(False, "Double DQN target (van Hasselt et al. 2016): online argmax over legal "
                                 "actions, target value")
    loss: str = _f("huber", "huber (TD error clipped to [-1, 1], the paper) or mse", choices=("huber", "mse"))
    loss_reduction: str = _f("sum", "sum over the minibatch (DeepMind's code backpropagates each clipped TD "
                                    "error unscaled) or mean", choices=("sum", "mean"))
    reward_clip: float = _f(1.0, "clip each reward to [-c, c] at sample time (0: no clipping)", low=0,
                            note="0 turns clipping off")
    life_loss_terminal: bool = _f(True, "a lost life ends the return for bootstrapping (episodes go on)")
    target_update: int = _f(10_000, "copy the online network to the target every this many updates", count=True,
                            low=1)
    learning_starts: int = _f(50_000, "agent steps{per_game} of random play before the first update", count=True,
                              low=0)
    update_every: int = _f(4, "agent steps (summed over all envs) per gradient update", low=1)
    epsilon_start: float = _f(1.0, "exploration epsilon at frame 0", low=0, high=1)
    epsilon_end: float = _f(0.1, "exploration epsilon after the decay", low=0, high=1)
    epsilon_decay_frames: int = _f(1_000_000, "emulator frames{per_game} over which epsilon decays linearly",
                                   count=True, low=0)


@dataclass
class ComputeSettings(Settings):
    """Where and how the computation runs (every trainer)."""

    seed: int = _f(0, "seed of the envs, the network initialisation, exploration and replay sampling", low=0,
                   high=2**63 - 1, note="the seeds derived from it per segment, process and test epoch must "
                                         "fit in 64 bits")
    device: str = _f("auto", "torch device: auto (cuda when available), cpu, cuda, cuda:1, ...")
    lockstep: bool | None = _f(None, "lockstep: every env stepped in a fixed order and the learner inline, so a "
                                     "seed gives the same run bit for bit; --no-lockstep: actor and learner on "
                                     "their own threads, the replay ratio held by a rate limiter; auto: lockstep "
                                     "on CPU, overlapped on CUDA")
    amp: bool | None = _f(None, "bfloat16 autocast for every forward pass (acting, updates, test epochs, the "
                                "experts' passes), float32 weights and optimiser state; auto: on where the CPU "
                                "computes bfloat16 natively (AVX512-BF16 or AMX), off elsewhere and on CUDA "
                                "(run.json records which)")
    cuda_graphs: bool = _f(True, "on CUDA, capture the update (forward, loss, backward, optimiser step) in a CUDA "
                                 "graph and replay it (eager when the algorithm's update needs the host)")
    torch_threads: int = _f(0, "torch intra-op threads on CPU (0: every core in lockstep, where the pool sleeps while "
                               "torch runs; overlapped: the cores the pool's threads leave free, at least 1)", low=0)


@dataclass
class EvaluationSettings(Settings):
    """The paper's test protocol: a test epoch after every training epoch."""

    train_epoch_frames: int = _f(250_000, "emulator frames{per_game} per training epoch; a test epoch follows each",
                                 count=True, low=1)
    test_epoch_frames: int = _f(125_000, "emulator frames{per_game} per test epoch (0: no test epochs)", count=True,
                                low=0)
    test_epsilon: float = _f(0.05, "epsilon during test epochs", low=0, high=1)
    test_envs: int = _f(1, "envs{per_game} playing each test epoch (they share its frame budget)", low=1)


@dataclass
class OutputSettings(Settings):
    """The run folder: checkpoints, CSV files, TensorBoard, the progress bar."""

    checkpoint_every: int = _f(1_000_000, "emulator frames{per_game} between checkpoints (one is also written at "
                                          "the end)", count=True, low=1)
    save_replay: bool = _f(False, "put the replay memory in the checkpoint (about 7 KB per transition)")
    log_every: int = _f(10_000, "emulator frames{per_game} between progress rows (CSV, TensorBoard)", count=True,
                        low=1)
    progress: bool = _f(True, "show a progress bar (only on a terminal)")
    tensorboard: bool = _f(True, "write TensorBoard event files")
