"""Keras side of retrieval: per-image features from an extractor, pair scores from a scorer.

- `extract_features`: runs `model.extractor()` over images in batches (progress on
  stderr) and returns name -> array.
- `build_feature_store`: the same, written to a crash-safe, resumable, compact
  `FeatureStore` tied to the model file's SHA-256 (`store_codecs`: what is kept,
  and how); `feature_extractor` gives the `extract` callable the store's
  `add_to_feature_store` takes.
- `keras_score_fn`: a `ScoreFn` from `model.scorer()`, compiled with XLA by default:
  the XLA-compiled "shift_add" scorer at 64 pairs a call is the fastest form
  measured on a 2-core CPU (`python benchmarks/bench_retrieval.py scorer`).

Example:

>>> features = extract_features(model.extractor(), dataset.gallery, model.image_size)
>>> score_fn = keras_score_fn(model.scorer("shift_add"))
>>> scores = rank_two_stage(score_fn, query_features, features, shortlist=100)
"""

import numpy as np
import tensorflow as tf

from keras_msreid.data.pipeline import make_eval_dataset
from keras_msreid.retrieval.encoding import INT4_OFFSET, INT8_LEVELS, EncodedFeature, FeatureCodec
from keras_msreid.retrieval.feature_store import write_feature_store
from keras_msreid.utils.file_hash import sha256_of_file
from keras_msreid.retrieval.progress import Progress


# How a feature store keeps each feature, by name (any other: "int8"); chosen by ranking
# agreement with float32 on CUHK01 (docs/RESULTS.md, "A compact feature store").
DEFAULT_ENCODINGS = {"embedding": "float16", "low_map": "int4"}


def feature_batches(extractor, records_or_paths, image_size, batch_size=128, names=None):
    """Yields dicts of per-image features (numpy) for the images, in order.

    A last, smaller batch is padded to the next power of two (repeating its last
    image), so that the extractor is traced for a few batch shapes only.
    """
    items = list(records_or_paths)
    if not items:
        return
    for images in make_eval_dataset(items, image_size, batch_size):
        size = int(images.shape[0])
        padded = min(batch_size, 1 << (size - 1).bit_length())
        if padded > size:
            images = tf.concat([images, tf.repeat(images[-1:], padded - size, axis=0)], axis=0)
        outputs = extractor.predict_on_batch(images)
        yield {name: np.asarray(outputs[name][:size]) for name in (names or outputs)}


def extract_features(extractor, records_or_paths, image_size, batch_size=128, progress=True, names=None):
    """Features of every image: name -> array `(num_images, ...)`.

    Args:
        extractor: `model.extractor()` (images in [0, 255] -> dict of features).
        records_or_paths: objects with `.path` (e.g. `ImageRecord`) or paths.
        image_size: `(height, width)` the model takes.
        batch_size: images per extractor call.
        progress: print a progress line on stderr.
        names: keep only these outputs (default: all).
    """
    items = list(records_or_paths)
    if not items:
        raise ValueError("extract_features got no images")
    meter = Progress(len(items), "extracting features", enabled=progress)
    features, done = None, 0
    for batch in feature_batches(extractor, items, image_size, batch_size, names):
        if features is None:
            features = {name: np.empty((len(items), *value.shape[1:]), value.dtype) for name, value in batch.items()}
        size = len(next(iter(batch.values())))
        for name, value in batch.items():
            features[name][done : done + size] = value
        done += size
        meter.update(size)
    meter.close()
    return features


def store_codecs(model, encodings=None):
    """`{name: FeatureCodec}` of what two-stage ranking needs of `model`, compactly.

    The embedding and every level's map and patch (not the STN's theta); a map
    keeps only the cells the pair head reads (`MSReIDPairHead.cells_read`).
    `encodings`: name -> encoding, over `DEFAULT_ENCODINGS` (others "int8").
    """
    encodings = {**DEFAULT_ENCODINGS, **(encodings or {})}
    shapes = {name: tuple(tensor.shape[1:]) for name, tensor in model.extractor().output.items()}
    read = model.pair_head.cells_read(model.backbone.output_shapes()) if model.levels else {}
    codecs = {}
    for name in ["embedding"] + (model.scorer_feature_names if model.levels else []):
        kept = tuple(np.flatnonzero(read[name])) if name in read else None
        codecs[name] = FeatureCodec(encodings.get(name, "int8"), shapes[name], kept)
    unknown = set(encodings) - set(codecs) - set(DEFAULT_ENCODINGS)
    if unknown:
        raise ValueError(f"this model's store has no features {sorted(unknown)}; it keeps {sorted(codecs)}")
    return codecs


def feature_extractor(model, batch_size=128, names=None):
    """`extract(items)`: batches of `model`'s features for those images, as a feature store takes them."""
    extractor = model.extractor()
    return lambda items: feature_batches(extractor, items, model.image_size, batch_size, names)


def build_feature_store(model_path, records_or_paths, directory, batch_size=128, chunk_size=1024, progress=True,
                        model=None, encodings=None, index_backend="auto"):
    """Makes the `FeatureStore` in `directory` hold these images' features (resumes if killed).

    The store records the SHA-256 of `model_path`, so features of another model are
    never mixed in: with a store of the same model, only images it lacks are
    extracted (and those it holds but are not given are removed). Pass `model`
    when the caller has already loaded `model_path`; `encodings` as for
    `store_codecs`.
    """
    if model is None:
        from keras_msreid.models import load_model

        model = load_model(model_path)
    codecs = store_codecs(model, encodings)
    return write_feature_store(
        directory,
        list(records_or_paths),
        feature_extractor(model, batch_size, names=list(codecs)),
        model_sha256=sha256_of_file(model_path),
        image_size=model.image_size,
        codecs=codecs,
        chunk_size=chunk_size,
        progress=progress,
        index_backend=index_backend,
    )


class KerasScoreFn:
    """`ScoreFn` of a Keras scorer (`model.scorer()`): aligned feature dicts -> scores `(N,)`.

    Pairs run `batch_size` at a time; a last, smaller batch is padded to the next
    power of two, so that XLA compiles only a few shapes. `bind` keeps a query and
    a gallery feature set as tensors and gathers each batch's pairs inside the
    compiled graph, which saves copying every batch's features into new arrays
    (1.3x the pairs per second in `bench_retrieval.py scorer`, 1.5x in
    Market-scale two-stage ranking). Calls from several threads at once are safe.
    """

    thread_safe = True

    def __init__(self, scorer_model, batch_size=64, jit_compile=True):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.feature_names = sorted({name[2:] for name in scorer_model.input})
        self._score = tf.function(
            lambda inputs: scorer_model(inputs, training=False)["score"], jit_compile=jit_compile
        )

        def score_indexed(query, gallery, query_index, gallery_index):
            inputs = {f"a_{name}": _gather(query[name], query_index) for name in self.feature_names}
            inputs.update({f"b_{name}": _gather(gallery[name], gallery_index) for name in self.feature_names})
            return scorer_model(inputs, training=False)["score"]

        self._score_indexed = tf.function(score_indexed, jit_compile=jit_compile)

    def __call__(self, a, b):
        def score_rows(rows):
            return self._score({f"{side}_{name}": features[name][rows]
                                for side, features in (("a", a), ("b", b)) for name in self.feature_names})

        return self._batched(len(a[self.feature_names[0]]), score_rows)

    def bind(self, query_features, gallery_features):
        """`(query_index, gallery_index) -> scores` of the pairs of these two feature sets.

        Encoded features (a compact `FeatureStore`'s) stay encoded in memory; each
        batch's rows are decoded inside the compiled graph.
        """
        query = {name: _as_tensors(query_features[name]) for name in self.feature_names}
        gallery = {name: _as_tensors(gallery_features[name]) for name in self.feature_names}

        def score(query_index, gallery_index):
            query_index = np.asarray(query_index, np.int64)
            gallery_index = np.asarray(gallery_index, np.int64)
            return self._batched(
                len(query_index),
                lambda rows: self._score_indexed(query, gallery, query_index[rows], gallery_index[rows]),
            )

        return score

    def _batched(self, count, score_rows):
        """Scores `(count,)` from `score_rows(rows)`, `batch_size` rows a call, the last padded."""
        scores = np.empty(count, np.float32)
        for start in range(0, count, self.batch_size):
            size = min(self.batch_size, count - start)
            padded = min(self.batch_size, 1 << (size - 1).bit_length())
            if padded == size:
                rows = slice(start, start + size)
            else:
                rows = np.minimum(np.arange(start, start + padded), start + size - 1)  # repeat the last pair
            scores[start : start + size] = np.asarray(score_rows(rows))[:size]
        return scores


def _as_tensors(feature):
    """A float array as a tensor; an `EncodedFeature` as `(codec, {array name: tensor})`."""
    if isinstance(feature, EncodedFeature):
        return feature.codec, {name: tf.convert_to_tensor(array) for name, array in feature.arrays.items()}
    return tf.convert_to_tensor(feature)


def _gather(feature, index):
    """Rows `index` of `_as_tensors` output, as float32 (`FeatureCodec.decode` in the graph)."""
    if not isinstance(feature, tuple):
        return tf.gather(feature, index)
    codec, arrays = feature
    codes = tf.gather(arrays["codes"], index)
    if codec.encoding == "int4":
        nibbles = tf.stack([tf.bitwise.bitwise_and(codes, 15), tf.bitwise.right_shift(codes, 4)], axis=-1)
        values = tf.reshape(tf.cast(nibbles, tf.float32) - INT4_OFFSET, tf.concat([tf.shape(codes)[:-1], [codec.channels]], 0))
        cells = values * tf.cast(tf.gather(arrays["scales"], index), tf.float32)[..., None]
    else:
        cells = tf.cast(codes, tf.float32)
        if codec.encoding == "int8":
            cells = cells * (1.0 / INT8_LEVELS)
    if codec.kept_cells is not None:
        # Every cell not kept reads an appended zero cell.
        source = np.full(codec.total_cells, codec.cells, np.int32)
        source[list(codec.kept_cells)] = np.arange(codec.cells)
        cells = tf.gather(tf.pad(cells, ((0, 0), (0, 1), (0, 0))), source, axis=1)
    return tf.reshape(cells, tf.concat([tf.shape(index), codec.shape], 0))


def keras_score_fn(scorer_model, batch_size=64, jit_compile=True):
    """A `ScoreFn` running `scorer_model` (see `KerasScoreFn`)."""
    return KerasScoreFn(scorer_model, batch_size, jit_compile)
