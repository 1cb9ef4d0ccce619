"""FeatureCodec / EncodedFeature: each encoding's error bound, kept cells, sizes, row access."""

import numpy as np
import pytest

from keras_msreid.retrieval.encoding import ENCODINGS, EncodedFeature, FeatureCodec


def unit_cells(shape, count=6, seed=0):
    values = np.random.default_rng(seed).normal(size=(count, *shape)).astype(np.float32)
    return values / np.linalg.norm(values, axis=-1, keepdims=True)


def naive_int4(values):
    """Per cell: scale = max |x| / 7 (as float16), codes round(x / scale) in [-7, 7]."""
    out = np.empty_like(values)
    for index in np.ndindex(values.shape[:-1]):
        cell = values[index]
        scale = np.float32(np.float16(np.abs(cell).max() / 7))
        out[index] = np.clip(np.rint(cell / scale), -7, 7) * scale
    return out


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_each_encoding_reads_back_within_its_bound(encoding):
    values = unit_cells((5, 3, 32))
    codec = FeatureCodec(encoding, (5, 3, 32))
    arrays = codec.encode(values)
    decoded = codec.decode(arrays)
    assert decoded.dtype == np.float32 and decoded.shape == values.shape
    bound = {"float32": 0.0, "float16": 1e-3, "int8": 0.5 / 127 + 1e-6, "int4": None}[encoding]
    if encoding == "int4":
        np.testing.assert_allclose(decoded, naive_int4(values), atol=1e-6)
        assert np.abs(decoded - values).max() <= np.abs(values).max() / 14 + 1e-3
    else:
        assert np.abs(decoded - values).max() <= bound
    assert sum(array.nbytes for array in arrays.values()) == len(values) * codec.bytes_per_image


def test_cells_not_kept_read_back_as_zeros_and_are_not_stored():
    values = unit_cells((4, 2, 8))
    kept = (0, 3, 4, 7)
    codec = FeatureCodec("int8", (4, 2, 8), kept_cells=kept)
    arrays = codec.encode(values)
    assert arrays["codes"].shape == (6, 4, 8) and codec.bytes_per_image == 4 * 8
    decoded = codec.decode(arrays).reshape(6, 8, 8)
    flat = values.reshape(6, 8, 8)
    np.testing.assert_allclose(decoded[:, list(kept)], flat[:, list(kept)], atol=0.5 / 127 + 1e-6)
    assert not decoded[:, [1, 2, 5, 6]].any()
    assert FeatureCodec.from_json(codec.to_json()) == codec
    # Keeping every cell is the same codec as keeping all by default.
    assert FeatureCodec("int8", (4, 2, 8), kept_cells=range(8)) == FeatureCodec("int8", (4, 2, 8))


def test_bad_values_and_codecs_are_refused():
    with pytest.raises(ValueError, match=r"int8 keeps components in \[-1, 1\].*got one of 2"):
        FeatureCodec("int8", (4,)).encode(np.array([[0.0, 2.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="NaN or infinite"):
        FeatureCodec("float16", (2,)).encode(np.array([[np.nan, 0.0]]))
    with pytest.raises(ValueError, match="per-image shape \\[3\\], the codec \\[4\\]"):
        FeatureCodec("float16", (4,)).encode(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="a feature of 5 channels cannot"):
        FeatureCodec("int4", (2, 5))
    with pytest.raises(ValueError, match="encoding must be one of"):
        FeatureCodec("int2", (4,))
    with pytest.raises(ValueError, match="kept_cells must be increasing cell indices below 3"):
        FeatureCodec("int8", (3, 4), kept_cells=(0, 3))


def test_an_all_zero_cell_stays_zero_in_int4():
    values = np.zeros((1, 2, 4), np.float32)
    values[0, 1] = [0.5, -0.5, 0.5, -0.5]
    codec = FeatureCodec("int4", (2, 4))
    np.testing.assert_allclose(codec.decode(codec.encode(values)), values, atol=1e-3)


def test_encoded_feature_decodes_only_the_rows_asked_for():
    values = unit_cells((3, 2, 8), count=9)
    codec = FeatureCodec("int4", (3, 2, 8), kept_cells=(0, 1, 4))
    feature = EncodedFeature(codec, codec.encode(values))
    everything = np.asarray(feature)
    assert len(feature) == 9 and feature.shape == (9, 3, 2, 8) and everything.shape == (9, 3, 2, 8)
    rows = np.array([7, 0, 7, 3])
    np.testing.assert_array_equal(np.take(feature, rows, axis=0), everything[rows])
    np.testing.assert_array_equal(feature[2], everything[2])
    np.testing.assert_array_equal(feature[1:4], everything[1:4])
    assert np.asarray(feature, np.float64).dtype == np.float64
    with pytest.raises(ValueError, match="axis 0"):
        feature.take([0], axis=1)
