"""Reading parameter values the way papermill passes them: "3" is 3, "True" is True.

Used by lenet5_helpers.checked_params (notebook 01 explains the check in words) and by the command
line. Every error names the parameter, the value given and what is accepted.
"""

from __future__ import annotations

import ast
from typing import Any


def as_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    """An integer parameter, also from papermill's strings ("3"), within [low, high]."""
    try:
        number = int(str(value).strip()) if not isinstance(value, bool) else None
    except ValueError:
        number = None
    if number is None or number < low or (high is not None and number > high):
        rule = f"an integer from {low:,} to {high:,}" if high else f"an integer >= {low}"
        raise ValueError(f"{name}={value!r} is not accepted: {name} must be {rule}.")
    return number


def as_float(name: str, value: Any) -> float:
    """A positive, finite number, also from a string ("0.1")."""
    try:
        number = float(value) if not isinstance(value, bool) else -1.0
    except (TypeError, ValueError):
        number = -1.0
    if not number > 0 or number == float("inf"):
        raise ValueError(f"{name}={value!r} is not accepted: {name} must be a number > 0, e.g. 0.1.")
    return number


def as_bool(name: str, value: Any) -> bool:
    """True or False, also from "true", "1", "yes", "false", "0", "no"."""
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no", "none", ""):
        return False
    raise ValueError(f"{name}={value!r} is not accepted: {name} must be True or False.")


def parse_value(text: str) -> Any:
    """A command-line value as papermill's -p reads it: numbers, True/False/None, else a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_seeds(text: str) -> list[int]:
    """The benchmarks' --seeds: '0-4' -> [0, 1, 2, 3, 4]; '0,3,7' -> [0, 3, 7]."""
    try:
        if "-" in text:
            low, high = text.split("-")
            seeds = list(range(int(low), int(high) + 1))
        else:
            seeds = [int(s) for s in text.split(",")]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0:
        raise ValueError(f"--seeds {text!r} is not accepted: give a range like 0-4 or a list like 0,3,7.")
    return seeds
