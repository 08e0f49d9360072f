"""Helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from pathlib import Path

from ..files.json_values import jsonable
from ..run.counts import format_count


@contextlib.contextmanager
def usage_errors(parser: argparse.ArgumentParser):
    """A ValueError or FileNotFoundError raised inside is the user's: argparse's one-line message with the
    command's usage, exit status 2 (no traceback)."""
    try:
        yield
    except (ValueError, FileNotFoundError) as exc:
        parser.error(str(exc))


def print_summary(summary: dict, **first) -> None:
    """A run's summary as one JSON line on stdout: first's keys, then the summary's (NaN as null)."""
    print(json.dumps({**first, **jsonable(summary)}), flush=True)


def add_settings_options(parser: argparse.ArgumentParser, settings_cls, title: str, skip=()) -> None:
    """One --option per field of a Settings dataclass (but those named in skip), documented with its help
    text and default.

    Options left out on the command line are absent from the parsed args (argparse.SUPPRESS), so the
    defaults, a --config file and a resumed run's settings can be layered below them.
    """
    group = parser.add_argument_group(title)
    fields = settings_cls.field_help()
    old_spellings = {name: [old for old, new in settings_cls.RENAMED.items() if new == name] for name in fields}
    own = [name for name in vars(settings_cls).get("__annotations__", {}) if name in fields]
    for name in own + [name for name in fields if name not in own]:   # the command's own settings first
        if name in skip:
            continue
        info = fields[name]
        flags = ["--" + n.replace("_", "-") for n in (name, *old_spellings[name])]
        default = info["default"]
        shown = format_count(default) if info["count"] else ("auto" if default is None else default)
        help_text = f"{info['help']} (default: {shown})"
        if info["type"] in ("bool", "bool | None"):
            group.add_argument(*flags, dest=name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                               help=help_text)
        else:
            group.add_argument(*flags, dest=name, default=argparse.SUPPRESS, choices=info["choices"],
                               action=_StoreSpelling, metavar=None if info["choices"] else info["type"].upper(),
                               help=help_text)


class _StoreSpelling(argparse.Action):
    """store, remembering in ``args.spellings`` the name an old spelling (Settings.RENAMED) gave the value,
    so that a bad value is reported under the name the user typed."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        spellings = getattr(namespace, "spellings", {})
        spellings[self.dest] = option_string.lstrip("-").replace("-", "_")
        namespace.spellings = spellings


def add_training_command(subparsers, name: str, *, help: str, description: str, settings_cls, settings_title: str,
                         run) -> argparse.ArgumentParser:
    """A training command's parser: its help, --config, --resume and one option per setting; ``run`` runs it."""
    parser = subparsers.add_parser(name, help=help, description=description,
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_run_options(parser, settings_cls, settings_title)
    parser.set_defaults(run=run)
    return parser


def add_run_options(parser: argparse.ArgumentParser, settings_cls, title: str) -> None:
    """--config FILE.toml, --resume and one option per setting: what every training command takes."""
    parser.add_argument("--config", metavar="FILE.toml",
                        help=f"TOML file of settings (top level or a [{settings_cls.TOML_TABLE}] table); command-line "
                             "options override it")
    parser.add_argument("--resume", action="store_true",
                        help="continue from <out>/checkpoint.pt when it exists (else start fresh)")
    add_settings_options(parser, settings_cls, title)


def layered_settings(args: argparse.Namespace, settings_cls, fixed: dict | None = None):
    """This run's settings: defaults, then (with --resume) the saved config of <out>/checkpoint.pt, then the
    --config file, then the command line, then ``fixed`` (values the command decides, e.g. a game's folder)."""
    from ..files.checkpoint import CHECKPOINT_NAME, load_checkpoint

    fields = settings_cls.field_help()
    values = dict(settings_cls.toml_values(args.config)) if args.config else {}
    spellings = getattr(args, "spellings", {})
    values.update({spellings.get(k, k): v for k, v in vars(args).items() if k in fields})
    values.update(fixed or {})
    checkpoint = Path(str(values.get("out", fields["out"]["default"]))) / CHECKPOINT_NAME
    saved = {}
    if args.resume and checkpoint.exists():
        payload = load_checkpoint(checkpoint, require=("config",), mmap=True)
        kind = payload["meta"].get("kind")
        if kind not in settings_cls.CHECKPOINT_KINDS:
            raise ValueError(f"--resume: {str(checkpoint)!r} is a checkpoint of a {kind!r} run, not of this "
                             f"command's (kind {' or '.join(map(repr, settings_cls.CHECKPOINT_KINDS))}); "
                             f"--out names another run's folder")
        saved = payload["config"]
    return settings_cls.from_dict({**saved, **values}, source=args.config or "command line")


def preflight(cfg, resume: bool, expect: dict[str, dict] | None = None) -> None:
    """The checks a training command makes before any slow set-up, each a ValueError naming its option:
    the device is usable, every run folder can be written, and (with --resume) each folder's checkpoint is
    for this run (expect: folder -> the meta keys its checkpoint must have) and holds what every resumed
    run reads (RESUME_KEYS: the weights, the optimizer state, the counters, the RNG states, the config)."""
    from ..files.checkpoint import CHECKPOINT_NAME, RESUME_KEYS, load_checkpoint
    from ..run.context import resolve_device

    try:
        resolve_device(cfg.device)
    except ValueError as exc:
        raise ValueError(f"--device: {exc}") from None
    for folder in (expect or {Path(cfg.out): {}}):
        writable_folder(Path(folder), "--out")
        checkpoint = Path(folder) / CHECKPOINT_NAME
        if resume and expect and checkpoint.exists():
            try:
                load_checkpoint(checkpoint, expect=expect[folder], require=RESUME_KEYS, mmap=True)
            except ValueError as exc:
                raise ValueError(f"--resume: {exc}") from None


def writable_folder(folder: Path, option: str) -> None:
    """Create folder (and its parents) if needed; ValueError naming the option when it cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{option}: cannot create the folder {str(folder)!r}: {exc.strerror or exc}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{option}: the folder {str(folder)!r} is not writable")


def add_video_options(parser: argparse.ArgumentParser, scale: int) -> None:
    """--view, --scale, --every and --fps: how evaluate --record and play draw and pace their videos."""
    from ..play.video import VIEWS

    group = parser.add_argument_group("video")
    group.add_argument("--view", choices=VIEWS, default="screen",
                       help="screen: the emulator's 210x160 colour screen; observation: the agent's 84x84 "
                            "grayscale frame (default: screen)")
    group.add_argument("--scale", type=int, default=scale, help=f"integer upscale of the video (default: {scale})")
    group.add_argument("--every", type=int, default=1,
                       help="keep one agent step in N in the video, for smaller files (default: 1)")
    group.add_argument("--fps", type=float, default=15.0,
                       help="video frames per second; 15 is real time for frame skip 4 (default: 15)")


def check_video_options(args: argparse.Namespace) -> None:
    """ValueError naming the option for a --scale, --every or --fps out of range."""
    for flag, value in (("--scale", args.scale), ("--every", args.every)):
        if value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    if not args.fps > 0:
        raise ValueError(f"--fps must be > 0, got {args.fps}")


def run_ship(args: argparse.Namespace, parser: argparse.ArgumentParser, ship) -> int:
    """ship-expert and ship-amn: parse --check-frames and --fidelity-frames, write the folder with
    ship(run_folder, out, dtype=, check_frames=, fidelity_frames=, note=), print its "shipped" record."""
    from ..run.counts import parse_count

    with usage_errors(parser):
        frames = {}
        for option, text in (("--check-frames", args.check_frames), ("--fidelity-frames", args.fidelity_frames)):
            frames[option] = parse_count(text, option)
            if frames[option] < 1:
                raise ValueError(f"{option} must be >= 1, got {text!r}")
        writable_folder(Path(args.out), "--out")
        folder = ship(args.run_folder, args.out, dtype=args.dtype, check_frames=frames["--check-frames"],
                      fidelity_frames=frames["--fidelity-frames"], note=args.note)
    record = json.loads((folder / "run.json").read_text())["shipped"]
    record.pop("settings")
    print(json.dumps(jsonable(record)))
    return 0
