"""Helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import math

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
