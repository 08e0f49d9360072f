"""Human-friendly counts for the command line and config files: 10M, 250k, 1.5M, 50_000, 1e6."""

from __future__ import annotations

_SUFFIXES = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000, "b": 1_000_000_000}


def parse_count(value: str | int, name: str = "value") -> int:
    """'10M' -> 10_000_000; ValueError naming `name` for anything that is not a non-negative count."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a count like 10M or 250k, got {value!r}")
    if isinstance(value, int):
        result = value
    elif isinstance(value, float) and value.is_integer():
        result = int(value)
    elif isinstance(value, str):
        text = value.strip().replace("_", "").replace(",", "")
        scale = _SUFFIXES.get(text[-1:].lower(), 1) if text else 1
        number = text[:-1] if scale != 1 else text
        try:
            amount = float(number)
        except ValueError:
            raise ValueError(f"{name} must be a count like 10M or 250k, got {value!r}") from None
        if not (amount * scale).is_integer():
            raise ValueError(f"{name} must be a whole number, got {value!r}")
        result = int(amount * scale)
    else:
        raise ValueError(f"{name} must be a count like 10M or 250k, got {value!r}")
    if result < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return result


def format_count(n: int) -> str:
    """10_000_000 -> '10M', 250_000 -> '250k', 1234 -> '1234'."""
    for suffix, scale in (("G", 1_000_000_000), ("M", 1_000_000), ("k", 1_000)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{suffix}"
    return str(n)
