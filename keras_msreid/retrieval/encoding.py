"""Compact per-image features: how a feature store keeps each feature, and reads it back.

A feature's *cells* are its positions (every axis but the last); a cell holds a
vector of channels. A `FeatureCodec` keeps a chosen subset of cells (`kept_cells`:
the pair head never reads the others, see `MSReIDPairHead.cells_read`) in one of
these encodings:

- `"float32"`, `"float16"`: the values;
- `"int8"`: `round(x * 127)` for components in [-1, 1] (unit vectors per cell:
  the similarity maps and patches), one fixed scale as the int8 scorer's;
- `"int4"`: per cell, `round(x / s)` in [-7, 7] with `s = max |x| / 7` kept as
  float16, two codes a byte.

`encode` gives the arrays to store (`codes`, and `scales` for int4); `decode`
gives float32 `(n, *shape)` back with zeros in cells not kept, so that a scorer
sees the feature's full shape. `EncodedFeature` wraps stored codes as a read-only
array-like (`len`, `np.take(feature, rows, axis=0)`, `np.asarray`) that decodes only
the rows asked for, which lets the ranking code gather pairs from a compact store
as from a float array. TensorFlow-free (the Keras scorer decodes the same codes in
its graph: `retrieval.extract.KerasScoreFn.bind`).

Example:

>>> codec = FeatureCodec("int8", shape=(40, 16, 32))
>>> arrays = codec.encode(unit_maps)          # {"codes": int8 (n, 640, 32)}
>>> np.abs(codec.decode(arrays) - unit_maps).max() <= 0.5 / 127
True
"""

import dataclasses

import numpy as np

ENCODINGS = ("float32", "float16", "int8", "int4")
INT8_LEVELS = 127
INT4_LEVELS = 7
INT4_OFFSET = INT4_LEVELS + 1  # a code is stored as an unsigned nibble, code + 8


@dataclasses.dataclass(frozen=True)
class FeatureCodec:
    """How one feature is kept: `encoding`, per-image `shape`, and the flat indices of the cells kept.

    `kept_cells=None` keeps every cell.
    """

    encoding: str
    shape: tuple
    kept_cells: tuple = None

    def __post_init__(self):
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {ENCODINGS}, got {self.encoding!r}")
        object.__setattr__(self, "shape", tuple(int(size) for size in self.shape))
        if not self.shape:
            raise ValueError("a feature needs at least one axis (its channels)")
        if self.encoding == "int4" and self.channels % 2:
            raise ValueError(f"int4 packs two channels a byte; a feature of {self.channels} channels cannot")
        if self.kept_cells is not None:
            kept = tuple(int(cell) for cell in self.kept_cells)
            if not kept or list(kept) != sorted(set(kept)) or kept[0] < 0 or kept[-1] >= self.total_cells:
                raise ValueError(f"kept_cells must be increasing cell indices below {self.total_cells}")
            object.__setattr__(self, "kept_cells", None if len(kept) == self.total_cells else kept)

    @property
    def channels(self):
        return self.shape[-1]

    @property
    def total_cells(self):
        return int(np.prod(self.shape[:-1], dtype=np.int64))

    @property
    def cells(self):
        """Cells kept per image."""
        return self.total_cells if self.kept_cells is None else len(self.kept_cells)

    @property
    def bytes_per_image(self):
        if self.encoding == "int4":
            return self.cells * (self.channels // 2 + 2)  # codes + a float16 scale per cell
        return self.cells * self.channels * np.dtype(self.encoding).itemsize

    def array_specs(self):
        """`{array name: (per-image shape, dtype)}` of what `encode` returns."""
        if self.encoding == "int4":
            return {"codes": ((self.cells, self.channels // 2), np.dtype(np.uint8)),
                    "scales": ((self.cells,), np.dtype(np.float16))}
        return {"codes": ((self.cells, self.channels), np.dtype(self.encoding))}

    def encode(self, values):
        """`{array name: array}` of a batch `(n, *shape)` of float values."""
        values = np.asarray(values, np.float32)
        if values.shape[1:] != self.shape:
            raise ValueError(f"values have per-image shape {list(values.shape[1:])}, the codec {list(self.shape)}")
        if not np.all(np.isfinite(values)):
            raise ValueError("features contain NaN or infinite values")
        cells = values.reshape(len(values), self.total_cells, self.channels)
        if self.kept_cells is not None:
            cells = cells[:, list(self.kept_cells)]
        if self.encoding in ("float32", "float16"):
            return {"codes": cells.astype(self.encoding)}
        if self.encoding == "int8":
            largest = float(np.abs(cells).max(initial=0.0))
            if largest > 1.0 + 1e-3:
                raise ValueError(f"int8 keeps components in [-1, 1] (unit vectors per cell); got one of {largest:.4g}")
            return {"codes": np.clip(np.rint(cells * INT8_LEVELS), -INT8_LEVELS, INT8_LEVELS).astype(np.int8)}
        scales = (np.abs(cells).max(axis=-1) / INT4_LEVELS).astype(np.float16)
        safe = np.where(scales > 0, scales.astype(np.float32), 1.0)[..., None]
        codes = (np.clip(np.rint(cells / safe), -INT4_LEVELS, INT4_LEVELS) + INT4_OFFSET).astype(np.uint8)
        return {"codes": codes[..., 0::2] | (codes[..., 1::2] << 4), "scales": scales}

    def decode(self, arrays):
        """Float32 `(n, *shape)` from `{array name: array}` rows (zeros in cells not kept)."""
        codes = np.asarray(arrays["codes"])
        if self.encoding in ("float32", "float16"):
            cells = codes.astype(np.float32)
        elif self.encoding == "int8":
            cells = codes.astype(np.float32) * np.float32(1.0 / INT8_LEVELS)
        else:
            unpacked = np.empty(codes.shape[:-1] + (self.channels,), np.float32)
            unpacked[..., 0::2] = (codes & 0x0F).astype(np.float32) - INT4_OFFSET
            unpacked[..., 1::2] = (codes >> 4).astype(np.float32) - INT4_OFFSET
            cells = unpacked * np.asarray(arrays["scales"], np.float32)[..., None]
        if self.kept_cells is not None:
            full = np.zeros((len(cells), self.total_cells, self.channels), np.float32)
            full[:, list(self.kept_cells)] = cells
            cells = full
        return cells.reshape((len(cells),) + self.shape)

    def to_json(self):
        spec = {"encoding": self.encoding, "shape": list(self.shape)}
        if self.kept_cells is not None:
            spec["kept_cells"] = list(self.kept_cells)
        return spec

    @classmethod
    def from_json(cls, spec):
        return cls(spec["encoding"], tuple(spec["shape"]), spec.get("kept_cells"))


class EncodedFeature:
    """Stored codes of one feature as a read-only array-like of float32 rows `(count, *codec.shape)`.

    `arrays`: `{array name: array}`, or `{array name: [array, ...]}` for a store's
    segments in order; `rows`: which rows of them, in order, are the feature's (None:
    all). Nothing is copied until asked: `np.take(feature, rows, axis=0)` decodes just
    those rows, `np.asarray(feature)` all of them, `feature.arrays` gives the codes of
    the feature's rows in one piece.
    """

    def __init__(self, codec, arrays, rows=None):
        self.codec = codec
        self._segments = {name: list(value) if isinstance(value, (list, tuple)) else [value]
                          for name, value in arrays.items()}
        lengths = {tuple(len(part) for part in parts) for parts in self._segments.values()}
        if len(lengths) != 1:
            raise ValueError(f"the arrays of one feature differ in length: {sorted(lengths)}")
        self._offsets = np.cumsum((0,) + lengths.pop())
        self._rows = None if rows is None else np.asarray(rows, np.int64)
        self._count = int(self._offsets[-1]) if self._rows is None else len(self._rows)

    def __len__(self):
        return self._count

    @property
    def shape(self):
        return (self._count,) + self.codec.shape

    @property
    def dtype(self):
        return np.dtype(np.float32)

    @property
    def nbytes(self):
        """Bytes of codes of the feature's rows."""
        return self._count * self.codec.bytes_per_image

    @property
    def arrays(self):
        """`{array name: codes of the feature's rows}`: the stored array itself when it is one piece."""
        if self._rows is None and len(self._offsets) == 2:
            return {name: parts[0] for name, parts in self._segments.items()}
        return self.codes(np.arange(self._count))

    def codes(self, indices):
        """`{array name: codes}` of the feature's rows `indices`, as stored (not decoded)."""
        return self._gather(np.asarray(indices, np.int64))

    def take(self, indices, axis=0):
        if axis != 0:
            raise ValueError("an encoded feature is indexed by its rows (axis 0) only")
        return self.codec.decode(self.codes(indices))

    def _gather(self, indices):
        physical = indices if self._rows is None else self._rows[indices]
        if len(self._offsets) == 2:
            return {name: np.take(parts[0], physical, axis=0) for name, parts in self._segments.items()}
        segment = np.searchsorted(self._offsets, physical, side="right") - 1
        gathered = {}
        for name, parts in self._segments.items():
            out = np.empty((len(physical),) + parts[0].shape[1:], parts[0].dtype)
            for number in np.unique(segment):
                mine = segment == number
                out[mine] = np.take(parts[number], physical[mine] - self._offsets[number], axis=0)
            gathered[name] = out
        return gathered

    def __getitem__(self, rows):
        if isinstance(rows, (int, np.integer)):
            return self.take([rows])[0]
        return self.take(np.arange(self._count)[rows])

    def __array__(self, dtype=None, copy=None):
        decoded = self.codec.decode(self.arrays)
        return decoded if dtype is None else decoded.astype(dtype, copy=False)
