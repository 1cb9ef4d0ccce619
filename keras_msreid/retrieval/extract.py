"""Keras side of retrieval: per-image features from an extractor, pair scores from a scorer.

- `extract_features`: runs `model.extractor()` over images in batches (progress on
  stderr) and returns name -> array.
- `build_feature_store`: the same, written to a crash-safe, resumable
  `FeatureStore` tied to the model file's SHA-256.
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
from keras_msreid.retrieval.feature_store import write_feature_store
from keras_msreid.utils.file_hash import sha256_of_file
from keras_msreid.retrieval.progress import Progress


def feature_batches(extractor, records_or_paths, image_size, batch_size=128, names=None, start=0):
    """Yields dicts of per-image features (numpy) for the images from index `start` on, in order.

    A last, smaller batch is padded to the next power of two (repeating its last
    image), so that the extractor is traced for a few batch shapes only.
    """
    items = list(records_or_paths)[start:]
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


def build_feature_store(model_path, records_or_paths, directory, batch_size=128, chunk_size=1024, progress=True,
                        model=None):
    """Extracts every output of the model's extractor into a `FeatureStore` (resumes if killed).

    The store records the SHA-256 of `model_path`, so features of another model are
    never mixed in: a store of the same model and images is reused as it is. Pass
    `model` when the caller has already loaded `model_path`.
    """
    if model is None:
        from keras_msreid.models import load_model

        model = load_model(model_path)
    extractor = model.extractor()
    items = list(records_or_paths)
    return write_feature_store(
        directory,
        items,
        lambda start: feature_batches(extractor, items, model.image_size, batch_size, start=start),
        model_sha256=sha256_of_file(model_path),
        image_size=model.image_size,
        chunk_size=chunk_size,
        progress=progress,
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
            inputs = {f"a_{name}": tf.gather(query[name], query_index) for name in self.feature_names}
            inputs.update({f"b_{name}": tf.gather(gallery[name], gallery_index) for name in self.feature_names})
            return scorer_model(inputs, training=False)["score"]

        self._score_indexed = tf.function(score_indexed, jit_compile=jit_compile)

    def __call__(self, a, b):
        def score_rows(rows):
            return self._score({f"{side}_{name}": features[name][rows]
                                for side, features in (("a", a), ("b", b)) for name in self.feature_names})

        return self._batched(len(a[self.feature_names[0]]), score_rows)

    def bind(self, query_features, gallery_features):
        """`(query_index, gallery_index) -> scores` of the pairs of these two feature sets."""
        query = {name: tf.convert_to_tensor(query_features[name]) for name in self.feature_names}
        gallery = {name: tf.convert_to_tensor(gallery_features[name]) for name in self.feature_names}

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


def keras_score_fn(scorer_model, batch_size=64, jit_compile=True):
    """A `ScoreFn` running `scorer_model` (see `KerasScoreFn`)."""
    return KerasScoreFn(scorer_model, batch_size, jit_compile)
