"""Shared benchmark plumbing: a session table of measured rates, printed as ratios at the end.

Each benchmark records `frames_per_second` (or another rate) under a key; the terminal summary prints
every ratio the issues' targets are stated in, all measured in this one run on this one machine.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path

import pytest

RATES: dict[str, float] = {}
# (label, numerator key, denominator key or None when the numerator already is a ratio, target)
RATIOS: list[tuple[str, str, str | None, float | None]] = []
# key of RATES -> (min, max) over the rounds whose median RATES holds
SPREADS: dict[str, tuple[float, float]] = {}


@pytest.fixture(scope="session")
def rates() -> dict[str, float]:
    return RATES


def register_ratio(label: str, numerator: str, denominator: str | None, target: float | None = None) -> None:
    RATIOS.append((label, numerator, denominator, target))


def register_spread(key: str, low: float, high: float) -> None:
    SPREADS[key] = (low, high)


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def pytest_terminal_summary(terminalreporter):
    if not RATES:
        return
    tr = terminalreporter
    tr.section("rates and ratios (same run)")
    tr.write_line(f"machine: {machine_description()}; commit {commit()}")
    for key, value in sorted(RATES.items()):
        spread = f"  (rounds {SPREADS[key][0]:.3f}-{SPREADS[key][1]:.3f})" if key in SPREADS else ""
        tr.write_line((f"  {key:<55s} {value:>14,.3f}" if value < 100 else f"  {key:<55s} {value:>14,.0f}") + spread)
    for label, num, den, target in RATIOS:
        if num in RATES and (den is None or den in RATES):
            ratio = RATES[num] / (1.0 if den is None else RATES[den])
            verdict = "" if target is None else ("  (target >= %.2f: %s)" % (target, "met" if ratio >= target else "MISSED"))
            tr.write_line(f"  {label:<55s} {ratio:>8.2f}x{verdict}")
    out = os.environ.get("ACTORMIMIC_BENCH_JSON")
    if out:
        Path(out).write_text(json.dumps({"machine": machine_description(), "commit": commit(), "rates": RATES,
                                         "spreads": SPREADS,
                                         "ratios": [(l, n, d, t) for l, n, d, t in RATIOS]}, indent=1))
