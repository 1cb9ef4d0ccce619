"""Stable row-wise argsort through unique integer sort keys.

`np.argsort(kind="stable")` is several times slower than numpy's vectorised sort of
plain integers. Packing each value's order (for float32, the value's bits made
order-preserving) above its column index gives keys that are all distinct, so any sort
of the keys yields the stable order, and the column index comes back from the low 32
bits:

```python
order = stable_argsort_rows(distances)
assert (order == np.argsort(distances, axis=1, kind="stable")).all()
```
"""

import numpy as np

_LOW_32_BITS = np.uint64(0xFFFFFFFF)
_SIGN_BIT = np.uint32(0x80000000)


def stable_row_keys(values):
    """uint64 keys, one per entry of the 2-D float32 `values`, ordered like (value, column).

    NaN has no place in an order and must be rejected by the caller.
    """
    bits = (np.asarray(values, dtype=np.float32) + np.float32(0.0)).view(np.uint32)
    # (+0.0 above turns -0.0 into +0.0: the two zeros tie, as they do for argsort.)
    # Non-negative floats order like their bits once the sign bit is set; negative
    # floats order like their inverted bits.
    return _pack(np.where(bits & _SIGN_BIT, ~bits, bits | _SIGN_BIT))


def row_order_from_keys(sorted_keys):
    """Column indices (intp) carried in the low 32 bits of sorted keys."""
    return (sorted_keys & _LOW_32_BITS).astype(np.intp)


def stable_argsort_rows(values):
    """`np.argsort(values, axis=1, kind="stable")` for a 2-D real array without NaN.

    Values exact in float32 (float32 matrices, and float64 ones cast from float32) are
    packed directly. Others get a fast unstable argsort first; ties, if any, are then
    resolved by packing each value's dense rank (equal values share one)
    above its column index and sorting those keys.
    """
    with np.errstate(over="ignore"):  # values beyond float32's range are simply not exact
        as_float32 = values.astype(np.float32, copy=False)
    if as_float32 is values or np.array_equal(as_float32, values):
        return row_order_from_keys(np.sort(stable_row_keys(as_float32), axis=1))
    order = np.argsort(values, axis=1)
    ranked = np.take_along_axis(values, order, axis=1)
    starts_new_value = np.ones(ranked.shape, dtype=np.uint32)
    starts_new_value[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
    if starts_new_value.all():  # no ties, the usual case for real-valued distances
        return order
    dense_rank = np.empty_like(starts_new_value)
    np.put_along_axis(dense_rank, order, np.cumsum(starts_new_value, axis=1, dtype=np.uint32), axis=1)
    return row_order_from_keys(np.sort(_pack(dense_rank), axis=1))


def _pack(order_bits):
    """uint64 keys: 32 order bits above the 32-bit column index."""
    num_columns = order_bits.shape[1]
    if num_columns >= 2**32:
        raise ValueError(f"at most 2**32 - 1 columns can be ranked, got {num_columns}")
    keys = order_bits.astype(np.uint64) << np.uint64(32)
    keys |= np.arange(num_columns, dtype=np.uint64)
    return keys
