"""Helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..sizes import format_count


def jsonable(value):
    """NaN -> None (JSON has no NaN), recursively through dicts."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


def add_settings_options(parser: argparse.ArgumentParser, settings_cls, title: str) -> None:
    """One --option per field of a Settings dataclass, documented with its help text and default.

    Options left out on the command line are absent from the parsed args (argparse.SUPPRESS), so the
    defaults, a --config file and a resumed run's settings can be layered below them.
    """
    group = parser.add_argument_group(title)
    for name, info in settings_cls.field_help().items():
        flag = "--" + name.replace("_", "-")
        default = info["default"]
        shown = format_count(default) if info["count"] else default
        help_text = f"{info['help']} (default: {shown})"
        if info["type"] == "bool":
            group.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                               help=help_text)
        else:
            group.add_argument(flag, dest=name, default=argparse.SUPPRESS, choices=info["choices"],
                               metavar=None if info["choices"] else info["type"].upper(), help=help_text)


def add_run_options(parser: argparse.ArgumentParser, settings_cls, title: str) -> None:
    """--config FILE.toml, --resume and one option per setting: what every training command takes."""
    parser.add_argument("--config", metavar="FILE.toml",
                        help=f"TOML file of settings (top level or a [{settings_cls.TOML_TABLE}] table); command-line "
                             "options override it")
    parser.add_argument("--resume", action="store_true",
                        help="continue from <out>/checkpoint.pt when it exists (else start fresh)")
    add_settings_options(parser, settings_cls, title)


def layered_settings(args: argparse.Namespace, settings_cls, fixed: dict | None = None,
                     checkpoint_name: str = "checkpoint.pt"):
    """This run's settings: defaults, then (with --resume) the saved config of <out>/checkpoint.pt, then the
    --config file, then the command line, then ``fixed`` (values the command decides, e.g. a game's folder)."""
    from ..checkpoint import load_checkpoint

    fields = settings_cls.field_help()
    values = dict(settings_cls.toml_values(args.config)) if args.config else {}
    values.update({k: v for k, v in vars(args).items() if k in fields})
    values.update(fixed or {})
    checkpoint = Path(str(values.get("out", fields["out"]["default"]))) / checkpoint_name
    saved = load_checkpoint(checkpoint)["config"] if args.resume and checkpoint.exists() else {}
    return settings_cls.from_dict({**saved, **values}, source=args.config or "command line")


def add_video_options(parser: argparse.ArgumentParser, scale: int) -> None:
    """--view, --scale, --every and --fps: how evaluate --record and play draw and pace their videos."""
    from ..video import VIEWS

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
