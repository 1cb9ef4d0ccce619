"""The exported re-identification models: extractor and scorer, read from an export folder.

An export folder (written by `msreid export`) holds `extractor_<mode>-<hash>.tflite`,
`scorer_<mode>-<hash>.tflite` and `metadata.json` (image size, feature names, the
match threshold and each file's sha256). `export/` writes and validates exports
through this module, so there is one reader of the format. Features are computed
once per person crop; the scorer then compares one crop's features with any number
of gallery samples in one invoke. A model without similarity levels is exported without a scorer:
it is matched by embedding cosine, and its threshold is a cosine.

Example:

>>> models = ReIDModels.load("models", mode="int8", num_threads=2)
>>> features = models.extract(crops)                 # (N, H, W, 3) uint8 RGB
>>> scores = models.score(take(features, [0]), gallery_features)   # one crop against each gallery sample
>>> gallery = models.encode(gallery_features, side="b")   # once, in the scorer's dtype
>>> scores = models.score(take(features, [0]), gallery)   # the same, the gallery encoded once
"""

import hashlib
import json
import math
import os

import numpy as np

from .litert import TFLiteModel

METADATA_NAME = "metadata.json"
# 2: the scorer compares one query (its a-inputs, a batch of 1) with many gallery rows.
FORMAT_VERSION = 2
# The numeric forms an export can hold its models in (export/README.md).
MODES = ("float32", "float16", "dynamic", "int8")
# Gallery rows scored against a query per invoke: the cost per row falls up to about 50
# rows (one query against 100 in invokes of 8 / 50 rows: float32 1.83 / 1.42 ms; docs/
# RESULTS.md, "A query-major scorer, computing in float on int8 features"); the bound
# keeps a large gallery's tensors small.
PAIRS_PER_INVOKE = 64


def take(features, indices):
    """The rows `indices` of every array in a feature dict."""
    return {name: value[indices] for name, value in features.items()}


def file_sha256(path):
    # Its own copy of keras_msreid.utils.file_hash: edge_demo/ is copied to a Pi without the package.
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_size(value):
    return (isinstance(value, list) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value))


def read_metadata(model_dir):
    """`metadata.json` of an export folder, checked for the fields the demo uses."""
    if not os.path.isdir(model_dir):
        what = "is a file, not a folder" if os.path.exists(model_dir) else "does not exist"
        raise FileNotFoundError(f"model folder {model_dir} {what}: pass the folder `msreid export --out` wrote")
    path = os.path.join(model_dir, METADATA_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"no {METADATA_NAME} in model folder {model_dir}: export a model with `msreid export MODEL --out DIR`"
        )
    try:
        with open(path, encoding="utf-8") as f:
            metadata = json.load(f)
    except OSError as error:
        raise OSError(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not valid JSON (not UTF-8 text): the export is damaged; export again") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}): the export is damaged; export again") from None
    if not isinstance(metadata, dict):
        raise ValueError(f"{path} holds a JSON {type(metadata).__name__}, not the object `msreid export` writes")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} has format_version {metadata.get('format_version')!r}; this demo reads version {FORMAT_VERSION}"
        )
    missing = [key for key in ("image_size", "embedding_dim", "scorer_feature_names", "match_threshold", "models")
               if key not in metadata]
    if missing:
        raise ValueError(f"{path} lacks {missing}")
    expected_input = {"color": "RGB", "pixel_range": [0, 255], "layout": "NHWC"}
    if metadata.get("input", expected_input) != expected_input:
        raise ValueError(f"{path} describes input {metadata['input']}; the demo feeds {expected_input}")
    problems = []
    if not _is_size(metadata["image_size"]):
        problems.append(f"image_size {metadata['image_size']!r} is not [height, width] in pixels")
    dim = metadata["embedding_dim"]
    if not (isinstance(dim, int) and not isinstance(dim, bool) and dim > 0):
        problems.append(f"embedding_dim {dim!r} is not a positive integer")
    names = metadata["scorer_feature_names"]
    if not (isinstance(names, list) and all(isinstance(name, str) and name for name in names)):
        problems.append(f"scorer_feature_names {names!r} is not a list of names")
    if not _is_number(metadata["match_threshold"]):
        problems.append(f"match_threshold {metadata['match_threshold']!r} is not a finite number")
    models = metadata["models"]
    if not (isinstance(models, dict) and models):
        problems.append(f"models {models!r} is not an object of modes")
    else:
        for mode, entry in models.items():
            roles = entry if isinstance(entry, dict) else {}
            for role in ("extractor", "scorer"):
                file_entry = roles.get(role)
                if role == "scorer" and file_entry is None:
                    continue
                if not (isinstance(file_entry, dict) and isinstance(file_entry.get("file"), str)
                        and file_entry["file"] and os.path.basename(file_entry["file"]) == file_entry["file"]
                        and isinstance(file_entry.get("sha256", ""), (str, type(None)))):
                    problems.append(f"models.{mode}.{role} {file_entry!r} is not {{\"file\": NAME, \"sha256\": HEX}}")
    if problems:
        raise ValueError(f"{path} is not a valid export: {'; '.join(problems)}")
    return metadata


def model_fingerprint(model_dir, metadata, mode):
    """What identifies the features of an export: its source model's sha256, else its extractor file's."""
    # The source model names the features; an export without it falls back to its extractor file.
    source = metadata.get("source_model")
    fingerprint = source.get("sha256") if isinstance(source, dict) else None
    if isinstance(fingerprint, str) and fingerprint:
        return fingerprint
    path = os.path.join(model_dir, metadata["models"][mode]["extractor"]["file"])
    if not os.path.isfile(path):
        raise FileNotFoundError(f"extractor model {path} named in {METADATA_NAME} does not exist")
    return file_sha256(path)


def check_mode(model_dir, metadata, mode):
    if mode not in metadata["models"]:
        raise ValueError(
            f"mode {mode!r} is not in {os.path.join(model_dir, METADATA_NAME)}; "
            f"exported modes: {', '.join(sorted(metadata['models']))}"
        )


def _runs_of_equal_rows(tensors, count):
    """`(first, end)` of each run of consecutive equal rows over `count` pairs (one run for a single row)."""
    rows = len(next(iter(tensors.values())))
    if rows == 1:
        return [(0, count)]
    same = np.ones(rows - 1, bool)
    for value in tensors.values():
        flat = value.reshape(rows, -1)
        same &= np.all(flat[1:] == flat[:-1], axis=1)
    starts = np.concatenate([[0], np.flatnonzero(~same) + 1])
    return list(zip(starts.tolist(), np.append(starts[1:], rows).tolist()))


class ReIDModels:
    """Extractor + scorer of one export mode (scorer None for an embedding-only model).

    Attributes:
        image_size: (height, width) of the crops the extractor takes.
        feature_names: per-image extractor outputs the scorer compares.
        match_threshold: a score at or above it means "same person".
        fingerprint: identifies the source model, so a gallery is never
            compared with features of another model.
    """

    def __init__(self, metadata, extractor, scorer, fingerprint, mode=None):
        self.metadata = metadata
        self.mode = mode
        self.extractor = extractor
        self.scorer = scorer
        self.image_size = tuple(int(v) for v in metadata["image_size"])
        self.feature_names = list(metadata["scorer_feature_names"])
        self.match_threshold = float(metadata["match_threshold"])
        self.fingerprint = fingerprint
        needed = {"embedding", *self.feature_names}
        if not needed <= set(extractor.output_names):
            raise ValueError(f"extractor {extractor.path} lacks outputs {sorted(needed - set(extractor.output_names))}")
        images = extractor.input_details.get("images")
        expected_images = (*self.image_size, 3)
        if images is None or len(extractor.input_details) != 1:
            raise ValueError(f"extractor {extractor.path} takes {extractor.input_names}, expected one input 'images'")
        takes = tuple(int(v) for v in images["shape_signature"][1:])
        if len(takes) != 3 or any(0 < have != want for have, want in zip(takes, expected_images)):
            raise ValueError(f"extractor {extractor.path} takes images of {takes}, but {METADATA_NAME} says "
                             f"image_size {list(self.image_size)}: the export is damaged or mixed; export again")
        expected_scorer = {f"{side}_{name}" for side in "ab" for name in self.feature_names}
        if (scorer is None) != (not self.feature_names):
            raise ValueError(f"metadata names scorer features {self.feature_names}, but the export "
                             f"{'has no' if scorer is None else 'has a'} scorer")
        if scorer is not None and set(scorer.input_names) != expected_scorer:
            raise ValueError(f"scorer {scorer.path} takes {scorer.input_names}, expected {sorted(expected_scorer)}")
        if scorer is not None and any(scorer.inputs[f"a_{name}"]["shape"][0] != 1 for name in self.feature_names):
            raise ValueError(f"scorer {scorer.path} takes aligned pairs, not one query against many rows: "
                             f"the export is damaged or mixed; export again")

    @classmethod
    def load(cls, model_dir, mode="int8", num_threads=None):
        """Loads `mode` ("float32", "float16", "dynamic" or "int8") from an export folder."""
        metadata = read_metadata(model_dir)
        check_mode(model_dir, metadata, mode)
        models = {"scorer": None}
        for role in ("extractor", "scorer"):
            entry = metadata["models"][mode].get(role)
            if entry is None:
                continue
            path = os.path.join(model_dir, entry["file"])
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{role} model {path} named in {METADATA_NAME} does not exist")
            try:
                digest = file_sha256(path) if entry.get("sha256") else None
            except OSError as error:
                raise OSError(f"cannot read {role} model {path}: {error.strerror}") from None
            if digest is not None and digest != entry["sha256"]:
                raise ValueError(f"{path} does not match its sha256 in {METADATA_NAME}: the export is damaged "
                                 f"or mixed with another one; export again")
            models[role] = TFLiteModel(path, num_threads=num_threads)
        fingerprint = model_fingerprint(model_dir, metadata, mode)
        return cls(metadata, models["extractor"], models["scorer"], fingerprint, mode)

    def extract(self, crops):
        """(N, H, W, 3) uint8 RGB crops -> {name: float32 (N, ...)}: embedding + scorer features."""
        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[1:] != self.image_size + (3,):
            raise ValueError(f"crops must be (N, {self.image_size[0]}, {self.image_size[1]}, 3), got {crops.shape}")
        outputs = self.extractor(images=crops)
        # Quantized embeddings are off unit length by the rounding; the gallery's dot products assume unit length.
        embedding = outputs["embedding"]
        norms = np.linalg.norm(embedding, axis=1, keepdims=True)
        features = {"embedding": embedding / np.maximum(norms, 1e-12)}
        features.update({name: outputs[name] for name in self.feature_names})
        return features

    def encode(self, features, side):
        """Features as the scorer's `side` ("a" or "b") inputs store them (int8 when quantized).

        Encode a gallery once, so that each query only encodes itself.
        """
        return {name: self.scorer.prepare_input(f"{side}_{name}", features[name]) for name in self.feature_names}

    def score(self, features_a, features_b, pairs_per_invoke=PAIRS_PER_INVOKE):
        """Scores in [0, 1] of aligned pairs, row i of `features_a` against row i of `features_b`;
        a side with one row is compared with every row of the other.

        Each side is a dict of features from `extract` (float32) or `encode` (the
        scorer's dtype). The scorer compares one a-row with many b-rows per invoke
        (a query against its gallery): consecutive pairs that share their a-row run
        together, `pairs_per_invoke` at a time (None: all in one).
        """
        if self.scorer is None:
            raise ValueError("this export has no scorer (an embedding-only model): match by embedding")
        sides = {"a": features_a, "b": features_b}
        counts = {side: len(features[self.feature_names[0]]) for side, features in sides.items()}
        pairs = max(counts.values())
        if min(counts.values()) not in (1, pairs):
            raise ValueError(f"cannot pair {counts['a']} crops with {counts['b']}: give equal counts or one")
        if pairs_per_invoke is not None and pairs_per_invoke < 1:
            raise ValueError(f"pairs_per_invoke must be >= 1 or None, got {pairs_per_invoke}")
        if pairs == 0:
            return np.zeros(0, np.float32)
        tensors = {side: {} for side in sides}
        for side, features in sides.items():
            for name in self.feature_names:
                stored = np.dtype(self.scorer.inputs[f"{side}_{name}"]["dtype"])
                value = np.asarray(features[name])
                value = value if value.dtype == stored else self.scorer.prepare_input(f"{side}_{name}", value)
                tensors[side][f"{side}_{name}"] = np.repeat(value, pairs, axis=0) if side == "b" and len(value) == 1 \
                    else value
        step = pairs_per_invoke or pairs
        raw = []
        for first, end in _runs_of_equal_rows(tensors["a"], pairs):
            query = {name: np.ascontiguousarray(value[first:first + 1]) for name, value in tensors["a"].items()}
            for start in range(first, end, step):
                chunk = {name: np.ascontiguousarray(value[start:min(start + step, end)])
                         for name, value in tensors["b"].items()}
                raw.append(np.asarray(self.scorer.run_quantized(**query, **chunk)["score"]).reshape(-1))
        return self.scorer.real_outputs({"score": np.concatenate(raw)})["score"]
