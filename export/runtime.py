"""Runs an export (metadata.json + TFLite models) with the LiteRT interpreter, numpy only.

`LiteRTModel` runs one `.tflite` file by the names of its inputs and outputs (its
`serving_default` signature), converting real values to and from quantized tensors
with each tensor's scale and zero point, and resizing the batch axis to the inputs.
`ExportedReID` pairs an export's extractor and scorer for retrieval: extract
features per image once, then score one query against many gallery images in a
single scorer invoke. TensorFlow-free, so it runs on a Raspberry Pi.

Example:

>>> reid = ExportedReID("export_dir", mode="int8", num_threads=2)
>>> gallery = reid.encode(reid.extract(gallery_crops), side="b")   # uint8 RGB crops
>>> query = reid.extract(query_crop[None])
>>> scores = reid.score(query, gallery)        # (num_gallery,) in [0, 1]
>>> same = scores >= reid.match_threshold
"""

import json
import os

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from keras_msreid.errors import UserError
from keras_msreid.utils.file_hash import sha256_of_file

FORMAT_VERSION = 1
METADATA_NAME = "metadata.json"
SIGNATURE_KEY = "serving_default"
# Scorer pairs per invoke: a few pairs keep the working set in cache (see
# benchmarks/bench_tflite_latency.py), where one invoke of 100 pairs costs more per pair.
PAIRS_PER_INVOKE = 16


def describe_tensor(name, details):
    """The metadata entry of a tensor from LiteRT's tensor details.

    `shape` has -1 on resizable axes (the batch); `scale` and `zero_point` are
    None for float tensors.
    """
    scales = details["quantization_parameters"]["scales"]
    quantized = len(scales) > 0
    return {
        "name": name,
        "shape": [int(size) for size in details["shape_signature"]],
        "dtype": np.dtype(details["dtype"]).name,
        "scale": float(scales[0]) if quantized else None,
        "zero_point": int(details["quantization_parameters"]["zero_points"][0]) if quantized else None,
    }


def quantize(values, tensor):
    """Real values -> the tensor's dtype: `round(x / scale + zero_point)`, saturated."""
    dtype = np.dtype(tensor["dtype"])
    if tensor["scale"] is None:
        return np.asarray(values, dtype=dtype)
    limits = np.iinfo(dtype)
    scaled = np.asarray(values, np.float32) / np.float32(tensor["scale"]) + tensor["zero_point"]
    return np.clip(np.rint(scaled), limits.min, limits.max).astype(dtype)


def dequantize(values, tensor):
    """The tensor's values as float32 real values: `(q - zero_point) * scale`."""
    if tensor["scale"] is None:
        return np.asarray(values, np.float32)
    return (np.asarray(values, np.float32) - tensor["zero_point"]) * np.float32(tensor["scale"])


class LiteRTModel:
    """One TFLite model, run by tensor names through its `serving_default` signature.

    `model(**inputs)` takes and returns real values (float32); `run_quantized`
    takes and returns the tensors as stored (int8/uint8 in a quantized model).
    Inputs of any batch size are accepted: the signature runner resizes the
    batch axis before each invoke.

    Args:
        model: path of a `.tflite` file, or its bytes.
        num_threads: interpreter threads (None: LiteRT's default).
    """

    def __init__(self, model, num_threads=None):
        if isinstance(model, (bytes, bytearray)):
            self.interpreter = Interpreter(model_content=bytes(model), num_threads=num_threads)
        else:
            if not os.path.isfile(model):
                raise FileNotFoundError(f"TFLite model not found: {model}")
            self.interpreter = Interpreter(model_path=str(model), num_threads=num_threads)
        signatures = self.interpreter.get_signature_list()
        if SIGNATURE_KEY not in signatures:
            raise UserError(
                f"{model if isinstance(model, str) else 'the model'} has no {SIGNATURE_KEY!r} signature "
                f"(signatures: {sorted(signatures)}); export it with export.convert"
            )
        self.runner = self.interpreter.get_signature_runner(SIGNATURE_KEY)
        self.inputs = {
            name: describe_tensor(name, details) for name, details in self.runner.get_input_details().items()
        }
        self.outputs = {
            name: describe_tensor(name, details) for name, details in self.runner.get_output_details().items()
        }

    def __call__(self, **inputs):
        self._check_names(inputs)
        tensors = {name: quantize(value, self.inputs[name]) for name, value in inputs.items()}
        raw = self.runner(**tensors)
        return {name: dequantize(value, self.outputs[name]) for name, value in raw.items()}

    def run_quantized(self, **tensors):
        self._check_names(tensors)
        for name, value in tensors.items():
            if value.dtype != np.dtype(self.inputs[name]["dtype"]):
                raise TypeError(f"input {name!r} must be {self.inputs[name]['dtype']}, got {value.dtype}")
        return self.runner(**tensors)

    def _check_names(self, given):
        missing = sorted(set(self.inputs) - set(given))
        unknown = sorted(set(given) - set(self.inputs))
        if missing or unknown:
            raise UserError(f"model inputs are {sorted(self.inputs)}; missing {missing}, unknown {unknown}")


def load_metadata(export_dir):
    """Reads and checks `export_dir/metadata.json` (format version, files present)."""
    path = os.path.join(export_dir, METADATA_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no {METADATA_NAME} in {export_dir}: not an export directory")
    with open(path) as f:
        metadata = json.load(f)
    if metadata.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{path}: format_version {metadata.get('format_version')!r}, expected {FORMAT_VERSION}")
    for mode, models in metadata["models"].items():
        for role, entry in models.items():
            if not os.path.isfile(os.path.join(export_dir, entry["file"])):
                raise FileNotFoundError(f"{path}: {mode} {role} file {entry['file']} is missing")
    return metadata


class ExportedReID:
    """The extractor and scorer of one mode of an export, for retrieval on a device.

    Args:
        export_dir: folder written by `export.convert.export_model` / `msreid export`.
        mode: one of the exported modes (`metadata["models"]`).
        num_threads: interpreter threads for both models.
        verify: check each model file's sha256 against the metadata.
    """

    def __init__(self, export_dir, mode="int8", num_threads=None, verify=True):
        self.metadata = load_metadata(export_dir)
        if mode not in self.metadata["models"]:
            raise UserError(f"mode {mode!r} is not in this export; exported: {sorted(self.metadata['models'])}")
        self.mode = mode
        self.match_threshold = self.metadata["match_threshold"]
        self.feature_names = self.metadata["scorer_feature_names"]
        entries = self.metadata["models"][mode]
        models = {}
        for role, entry in entries.items():
            path = os.path.join(export_dir, entry["file"])
            if verify and sha256_of_file(path) != entry["sha256"]:
                raise UserError(f"{path} does not match the sha256 in {METADATA_NAME}: re-export it")
            models[role] = LiteRTModel(path, num_threads=num_threads)
        self.extractor = models["extractor"]
        self.scorer = models.get("scorer")

    def extract(self, images):
        """RGB images `(N, H, W, 3)` in [0, 255] (uint8 or float) -> dict of float32 outputs."""
        return self.extractor(images=images)

    def encode(self, features, side):
        """Features as the scorer's `side` ("a" or "b") inputs take them (int8 when quantized).

        Store a gallery encoded once, so each query only encodes itself.
        """
        return {
            name: quantize(features[name], self.scorer.inputs[f"{side}_{name}"]) for name in self.feature_names
        }

    def score(self, features_a, features_b, pairs_per_invoke=PAIRS_PER_INVOKE):
        """Scores of aligned pairs; a side with one image is compared with every image of the other.

        Each side is a dict of features from `extract` (float32) or `encode` (the
        scorer's dtype). Pairs run `pairs_per_invoke` at a time (None: all in one
        invoke). Returns float32 scores in [0, 1], shape `(pairs,)`.
        """
        if self.scorer is None:
            raise UserError("this export has no scorer (an embedding-only model): rank by embedding")
        sides = {"a": features_a, "b": features_b}
        counts = {side: len(features[self.feature_names[0]]) for side, features in sides.items()}
        pairs = max(counts.values())
        if min(counts.values()) not in (1, pairs):
            raise UserError(f"cannot pair {counts['a']} images with {counts['b']}: give equal counts or one")
        tensors = {}
        for side, features in sides.items():
            for name in self.feature_names:
                tensor = self.scorer.inputs[f"{side}_{name}"]
                value = features[name]
                tensors[f"{side}_{name}"] = value if value.dtype == np.dtype(tensor["dtype"]) else quantize(value, tensor)
        step = pairs_per_invoke or pairs
        raw = []
        for start in range(0, pairs, step):
            count = min(step, pairs - start)
            chunk = {
                name: np.repeat(value, count, axis=0) if len(value) == 1 else np.ascontiguousarray(value[start : start + count])
                for name, value in tensors.items()
            }
            raw.append(self.scorer.run_quantized(**chunk)["score"])
        return dequantize(np.concatenate(raw), self.scorer.outputs["score"])
