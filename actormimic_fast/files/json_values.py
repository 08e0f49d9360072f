"""Values made fit for JSON: JSON has no NaN, so a score that does not exist (no finished episode) is written
as null. The commands' JSON lines and ship-expert's record pass their values through jsonable."""

from __future__ import annotations

import math


def jsonable(value):
    """NaN -> None, recursively through dicts and lists; anything else unchanged."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value
