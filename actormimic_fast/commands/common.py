"""Helpers shared by the subcommands."""

from __future__ import annotations

import math


def jsonable(value):
    """NaN -> None (JSON has no NaN), recursively through dicts."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value
