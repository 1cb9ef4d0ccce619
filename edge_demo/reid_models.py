"""The exported re-identification models: extractor and scorer, read from an export folder.

An export folder (written by `msreid export`) holds `extractor_<mode>.tflite`,
`scorer_<mode>.tflite` and `metadata.json` (image size, feature names, the match
threshold and each file's sha256). Features are computed once per person crop;
the scorer then compares one crop's features with any number of gallery samples
in one invoke. A model without similarity levels is exported without a scorer:
it is matched by embedding cosine, and its threshold is a cosine.

Example:

>>> models = ReIDModels.load("models", mode="int8", num_threads=2)
>>> features = models.extract(crops)                 # (N, H, W, 3) uint8 RGB
>>> scores = models.score(take(features, [0] * 3), gallery_features)   # (3,)
"""

import hashlib
import json
import os

import numpy as np

from edge_demo.litert import TFLiteModel

METADATA_NAME = "metadata.json"
FORMAT_VERSION = 1


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


def read_metadata(model_dir):
    """`metadata.json` of an export folder, checked for the fields the demo uses."""
    path = os.path.join(model_dir, METADATA_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"no {METADATA_NAME} in model folder {model_dir}: export a model with `msreid export MODEL --out DIR`"
        )
    with open(path) as f:
        try:
            metadata = json.load(f)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON: {error}") from None
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
    return metadata


class ReIDModels:
    """Extractor + scorer of one export mode (scorer None for an embedding-only model).

    Attributes:
        image_size: (height, width) of the crops the extractor takes.
        feature_names: per-image extractor outputs the scorer compares.
        match_threshold: a score at or above it means "same person".
        fingerprint: identifies the source model, so a gallery is never
            compared with features of another model.
    """

    def __init__(self, metadata, extractor, scorer, fingerprint):
        self.extractor = extractor
        self.scorer = scorer
        self.image_size = tuple(int(v) for v in metadata["image_size"])
        self.feature_names = list(metadata["scorer_feature_names"])
        self.match_threshold = float(metadata["match_threshold"])
        self.fingerprint = fingerprint
        needed = {"embedding", *self.feature_names}
        if not needed <= set(extractor.output_names):
            raise ValueError(f"extractor {extractor.path} lacks outputs {sorted(needed - set(extractor.output_names))}")
        expected_scorer = {f"{side}_{name}" for side in "ab" for name in self.feature_names}
        if (scorer is None) != (not self.feature_names):
            raise ValueError(f"metadata names scorer features {self.feature_names}, but the export "
                             f"{'has no' if scorer is None else 'has a'} scorer")
        if scorer is not None and set(scorer.input_names) != expected_scorer:
            raise ValueError(f"scorer {scorer.path} takes {scorer.input_names}, expected {sorted(expected_scorer)}")

    @classmethod
    def load(cls, model_dir, mode="int8", num_threads=None):
        """Loads `mode` ("float32", "float16", "dynamic" or "int8") from an export folder."""
        metadata = read_metadata(model_dir)
        if mode not in metadata["models"]:
            raise ValueError(
                f"mode {mode!r} is not in {os.path.join(model_dir, METADATA_NAME)}; "
                f"exported modes: {', '.join(sorted(metadata['models']))}"
            )
        models = {"scorer": None}
        for role in ("extractor", "scorer"):
            entry = metadata["models"][mode].get(role)
            if entry is None:
                if role == "extractor":
                    raise ValueError(f"{METADATA_NAME} in {model_dir} names no extractor for mode {mode!r}")
                continue
            path = os.path.join(model_dir, entry["file"])
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{role} model {path} named in {METADATA_NAME} does not exist")
            if entry.get("sha256") and file_sha256(path) != entry["sha256"]:
                raise ValueError(f"{path} does not match its sha256 in {METADATA_NAME}: the export is damaged "
                                 f"or mixed with another one; export again")
            models[role] = TFLiteModel(path, num_threads=num_threads)
        # The source model names the features; an export without it falls back to its extractor file.
        fingerprint = (metadata.get("source_model") or {}).get("sha256") or file_sha256(models["extractor"].path)
        return cls(metadata, models["extractor"], models["scorer"], fingerprint)

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

    def score(self, features_a, features_b):
        """Scores of aligned pairs: row i of `features_a` against row i of `features_b`."""
        inputs = {f"a_{name}": features_a[name] for name in self.feature_names}
        inputs.update({f"b_{name}": features_b[name] for name in self.feature_names})
        return self.scorer(**inputs)["score"].reshape(-1)
