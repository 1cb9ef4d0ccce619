"""Tests for the packed-key stable argsort behind evaluate_ranking and re_ranking."""

import numpy as np
import pytest

from keras_msreid.metrics._sort_keys import stable_argsort_rows


def awkward_rows(dtype, ties):
    rng = np.random.default_rng(0)
    values = rng.normal(size=(6, 50)) * 10.0
    if ties:
        values = np.round(values / 5.0)
    values = values.astype(dtype)
    if np.issubdtype(dtype, np.floating):
        values[0, :6] = [np.inf, -np.inf, 0.0, -0.0, np.inf, -0.0]
        values[1, :3] = np.finfo(dtype).tiny, -np.finfo(dtype).tiny, np.finfo(dtype).max
    return values


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.int16])
@pytest.mark.parametrize("ties", [False, True])
def test_equals_numpy_stable_argsort(dtype, ties):
    values = awkward_rows(dtype, ties)
    np.testing.assert_array_equal(
        stable_argsort_rows(values), np.argsort(values, axis=1, kind="stable")
    )
