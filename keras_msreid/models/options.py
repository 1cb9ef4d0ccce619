"""Checks of a model's constructor options, so that a bad value names the option instead of failing deep in Keras.

The backbones and the pair head call these on their arguments; `TrainConfig`
passes its `model` mapping through whole and relies on them, so a YAML file, a
flag and the Python API all get the same one-line error.

Example:

>>> integer("parts", "two", low=1)
Traceback (most recent call last):
keras_msreid.models.options.ModelOptionError: parts must be an integer >= 1, got 'two'
"""

import math
import numbers

from keras_msreid.errors import UserError


class ModelOptionError(UserError):
    """A model option with a wrong type or value: the message names it, `option` holds its name."""

    def __init__(self, option, message):
        super().__init__(message)
        self.option = option


def _refuse(option, problem, value):
    raise ModelOptionError(option, f"{option} {problem}, got {value!r}")


def arguments(constructor_locals):
    """A constructor's own arguments, from `locals()` taken as its first statement (for its `check_options`)."""
    return {name: value for name, value in constructor_locals.items() if name not in ("self", "kwargs", "__class__")}


def integer(option, value, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        _refuse(option, f"must be an integer >= {low}", value)
    return int(value)


def integers(option, value, count, low):
    """A tuple of `count` integers >= `low` (a list is accepted, as YAML and JSON give it)."""
    if not isinstance(value, (tuple, list)) or len(value) != count \
            or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low for v in value):
        _refuse(option, f"must be {count} integers >= {low}", value)
    return tuple(int(v) for v in value)


def positive_number(option, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        _refuse(option, "must be a number > 0", value)
    return float(value)


def flag(option, value):
    if not isinstance(value, bool):
        _refuse(option, "must be true or false", value)
    return value


def names(option, value, allowed):
    """Distinct names among `allowed`, as a tuple (a list is accepted)."""
    if isinstance(value, str) or not isinstance(value, (tuple, list)):
        _refuse(option, f"must be a list of names among {', '.join(allowed)}", value)
    unknown = [v for v in value if v not in allowed]
    if unknown:
        raise ModelOptionError(option, f"unknown {option} {unknown}; choose from {', '.join(allowed)}")
    if len(set(value)) != len(value):
        _refuse(option, "must not name one twice", value)
    return tuple(value)


def choice(option, value, allowed):
    if value not in allowed:
        _refuse(option, f"must be one of {tuple(allowed)}", value)
    return value
