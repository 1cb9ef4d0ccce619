"""Tests for the packed-key stable argsort behind evaluate_ranking and re_ranking."""

import warnings

import numpy as np
import pytest

from keras_msreid.metrics._sort_keys import stable_argsort_rows


def rows_of(kind):
    """6 x 60 test rows; the name says which code path of stable_argsort_rows they take."""
    rng = np.random.default_rng(0)
    normal = rng.normal(size=(6, 60)) * 10.0
    rounded = np.round(normal / 5.0)  # about 10 distinct values per row: many ties
    if kind == "float32":
        values = normal.astype(np.float32)
        values[0, :6] = [np.inf, -np.inf, 0.0, -0.0, np.inf, -0.0]
        values[1, :3] = np.finfo(np.float32).tiny, -np.finfo(np.float32).tiny, np.finfo(np.float32).max
        return values
    if kind == "float32 ties":
        return rounded.astype(np.float32)
    if kind == "float64 cast from float32, ties":
        return rounded.astype(np.float32).astype(np.float64)
    if kind == "float64, no ties":
        return normal / 3.0
    if kind == "float64, ties":
        values = rounded / 3.0  # thirds are not exact in float32
        values[0, :4] = [1e300, -1e300, 1e300, -0.0]  # past float32's range
        return values
    if kind == "int64 past 2**24, ties":
        return rounded.astype(np.int64) + 2**40
    if kind == "int16, ties":
        return rounded.astype(np.int16)
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "float32", "float32 ties", "float64 cast from float32, ties", "float64, no ties",
        "float64, ties", "int64 past 2**24, ties", "int16, ties",
    ],
)
def test_equals_numpy_stable_argsort(kind):
    values = rows_of(kind)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning for values past float32
        order = stable_argsort_rows(values)
    np.testing.assert_array_equal(order, np.argsort(values, axis=1, kind="stable"))
