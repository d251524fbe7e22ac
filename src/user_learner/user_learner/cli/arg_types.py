"""``argparse`` types that refuse out-of-range numbers at the command line, naming the flag and the range."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def _number(kind: type, text: str) -> int | float:
    try:
        return kind(text)
    except ValueError:
        expected = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None


def count(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An integer in ``[minimum, maximum]`` (no upper bound when ``maximum`` is None)."""

    def parse(text: str) -> int:
        value = int(_number(int, text))
        if value < minimum or (maximum is not None and value > maximum):
            bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
            raise argparse.ArgumentTypeError(f"expected an integer {bound}, got {text!r}")
        return value

    return parse


def positive(text: str) -> float:
    """A number > 0 (rates, learning rates, speed factors)."""
    value = float(_number(float, text))
    if not value > 0.0:  # (also refuses nan)
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def seconds(text: str) -> float:
    """A duration >= 0 (0 = never, for timeouts)."""
    value = float(_number(float, text))
    if not value >= 0.0:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0 (0 = never), got {text!r}")
    return value


def held_out(text: str) -> float:
    """A share of episodes held out for validation, in [0, 1)."""
    value = float(_number(float, text))
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a share in [0, 1), got {text!r}")
    return value


def probability(text: str) -> float:
    """A probability in (0, 1] (a target precision)."""
    value = float(_number(float, text))
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a value in (0, 1], got {text!r}")
    return value
