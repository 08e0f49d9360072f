"""How the report writes numbers: the cells of its Markdown tables, frame counts in its messages and axis labels."""

from __future__ import annotations

import math

from ..run.counts import format_count


def format_number(x: float) -> str:
    """5 significant digits, whole numbers from 10,000 up (57279, 1669.2, 19.581); empty for NaN."""
    if not math.isfinite(x):
        return ""
    return f"{x:.0f}" if abs(x) >= 10_000 else f"{x:.5g}"


def format_frames(n: int) -> str:
    """1_500_000 -> '1.5M', 250_000 -> '250k', 1234 -> '1234'."""
    return f"{n / 1e6:g}M" if n >= 1_000_000 and n % 10_000 == 0 else format_count(n)


def format_percent(x: float) -> str:
    """One decimal and a % sign; empty for NaN."""
    return f"{x:.1f}%" if math.isfinite(x) else ""


def format_fraction(x: float) -> str:
    """A share such as agreement, to 3 decimals; empty for NaN."""
    return f"{x:.3f}" if math.isfinite(x) else ""
