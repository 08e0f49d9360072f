"""Argument checks shared by the Python classes: errors name the argument and show its value.

Every public entry point of the env, the replay and the ops runs its arguments through these before
anything reaches C++, so a wrong type or an out-of-range number raises a TypeError / ValueError /
IndexError that names the argument instead of pybind11's signature dump or a silent conversion.
"""

from __future__ import annotations

import math
import numbers
import sys

import numpy as np

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1


def check_int(name: str, value, low: int, high: int | None = None) -> int:
    """`value` as an int in [low, high]; TypeError for non-integers (bools included), ValueError when out of range."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r} of type {type(value).__name__}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return int(value)


def check_index(name: str, value, size: int) -> int:
    """`value` as an index into `size` items: TypeError for non-integers, IndexError outside [0, size) (negative
    indices are refused, not wrapped)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r} of type {type(value).__name__}")
    if not 0 <= value < size:
        raise IndexError(f"{name} = {value} is out of range [0, {size})")
    return int(value)


def check_bool(name: str, value) -> bool:
    """`value` as a bool; TypeError for anything but a bool or numpy bool (a flag is never taken by truthiness)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r} of type {type(value).__name__}")
    return bool(value)


def check_real(name: str, value, *, finite: bool = True) -> float:
    """`value` as a float: TypeError unless it is a real number (bools refused), ValueError if it is NaN or (with
    `finite`) infinite, or too large for a float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} of type {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(f"{name} must fit in a float, got {value!r}") from None
    if math.isnan(number) or (finite and math.isinf(number)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return number


def host_array(name: str, value) -> np.ndarray:
    """`value` (array-like, numpy array or CPU torch tensor) as a numpy array; ValueError for a tensor on another
    device (meta, cuda, ...) instead of torch's conversion error or a copy through the host."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        if value.device.type != "cpu":
            raise ValueError(f"{name} must be on the CPU, got a tensor on device {value.device}")
        return value.detach().numpy()
    return np.asarray(value)


def int_array(name: str, value, dtype) -> np.ndarray:
    """An integer array-like `value` as `dtype`: TypeError for non-integer (or bool) dtypes, ValueError when a value
    does not fit in `dtype` (numpy's cast would wrap it around)."""
    arr = host_array(name, value)
    if arr.size == 0 and not hasattr(value, "dtype"):  # [] is float64 to numpy: an empty list has no dtype
        arr = arr.astype(dtype)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must be an integer array, got dtype {arr.dtype}")
    info = np.iinfo(dtype)
    if arr.size and (arr.min() < info.min or arr.max() > info.max):
        bad = arr.flat[int(np.argmax((arr < info.min) | (arr > info.max)))]
        raise ValueError(f"{name} holds {bad}, which does not fit in {np.dtype(dtype).name}")
    return np.ascontiguousarray(arr, dtype=dtype)
