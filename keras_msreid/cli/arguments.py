"""Argument types that check a flag's range as it is parsed, so a bad value fails before any work.

argparse turns their `ArgumentTypeError` into its usual `msreid <command>: error:
argument --flag: ...` line with exit status 2.

Example:

>>> parser.add_argument("--shortlist", type=at_least(1), default=100)
"""

import argparse
import math


def at_least(low):
    """An integer type that refuses values below `low`."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def within(low, high):
    """A float type that refuses values outside `[low, high]` (and NaN)."""

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number in [{low}, {high}], got {text!r}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(f"must be in [{low}, {high}], got {text}")
        return value

    parse.__name__ = f"number in [{low}, {high}]"
    return parse
