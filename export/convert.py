"""Converts a trained MSReID model into TFLite extractor and scorer files plus metadata.

Each Keras model goes through a SavedModel (Keras' `ExportArchive`, the TensorFlow
path for Keras 3) and the TFLite converter, once per mode:

- `float32`: no optimisation.
- `float16`: float16 weights, float32 compute.
- `dynamic`: int8 weights, activations quantized on the fly.
- `int8`: full integer post-training quantization calibrated on training
  images; the image input is `uint8` or `int8` (`input_type`), the scorer's
  inputs `int8`, every output `float32`. The STN's sampling weights and the
  embedding head stay in float, and the scorer computes in float on its int8
  inputs (`export.float_ops` says why), as do ops without an int8 kernel, behind
  QUANTIZE / DEQUANTIZE ops.

Only TFLITE_BUILTINS are allowed. When a builtins-only conversion fails, the
model is converted again with Flex and custom ops allowed and its op list read
(`export.op_check`), so the `UnsupportedOpsError` names every offending op.
Files are written only after every conversion succeeded, each atomically
(temporary file + `os.replace`) under a name that carries its content's hash
(`extractor_int8-<sha256[:12]>.tflite`), so no new file ever replaces an old one.
`metadata.json` is replaced last, which is the commit: killed or failed at any
moment, the folder holds the previous complete export, still usable, or the new
one. Only then are the files the previous metadata named (and the new one does
not) removed; nothing else in the folder is touched.

Example:

>>> metadata = export_model("model.keras", "exported", modes=("float32", "int8"),
...                         calibration_images=train_images, calibration_ids=train_ids,
...                         threshold_images=val_images, threshold_ids=val_ids)
>>> metadata["models"]["int8"]["extractor"]["file"]   # role, mode and the first 12 hex digits of its sha256
'extractor_int8-....tflite'
"""

import contextlib
import functools
import hashlib
import json
import os
import pathlib
import tempfile

import keras
import numpy as np
import tensorflow as tf

from keras_msreid.edge_demo.litert import SIGNATURE_KEY, TFLiteModel
from keras_msreid.edge_demo.reid_models import FORMAT_VERSION, METADATA_NAME, MODES
from keras_msreid.export import threshold as threshold_lib
from keras_msreid.export.float_ops import float_islands
from keras_msreid.export.op_check import UnsupportedOpsError, check_builtin_ops, list_ops
from keras_msreid.errors import UserError
from keras_msreid.utils.atomic import atomic_write_bytes
from keras_msreid.utils.file_hash import sha256_of_file

INPUT_TYPES = ("uint8", "int8")


@contextlib.contextmanager
def _saved_model(model):
    """Writes `model`'s inference call as a SavedModel in a temporary folder."""
    if isinstance(model.input, dict):
        signature = [{name: tf.TensorSpec(t.shape, t.dtype, name=name) for name, t in model.input.items()}]
    else:
        name = model.inputs[0].name
        signature = [tf.TensorSpec(model.inputs[0].shape, model.inputs[0].dtype, name=name)]
    with tempfile.TemporaryDirectory(prefix="msreid_export_") as folder:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(
            SIGNATURE_KEY, functools.partial(model.__call__, training=False), input_signature=signature
        )
        archive.write_out(folder, verbose=False)
        yield folder


def _converter(saved_model_dir, mode, representative_inputs, input_type, output_type=tf.int8):
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if mode == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: iter(representative_inputs)
        converter.inference_input_type = input_type
        converter.inference_output_type = output_type
    return converter


def _selectively_quantized(saved_model_dir, representative_inputs, input_type, output_type, float_nodes):
    """Full int8, except the tensors named in `float_nodes`, which stay float32.

    Calibrates, then quantizes with the MLIR quantizer's deny list: the steps the
    converter and TensorFlow's quantization debugger take. The converter's public
    options cannot deny single nodes; the debugger can, but leaves float inputs
    and outputs, whose conversion afterwards (`modify_model_io_type`) gave a model
    that crashed LiteRT when resized.
    """
    from tensorflow.lite.python.convert import mlir_quantize

    converter = _converter(saved_model_dir, "int8", representative_inputs, input_type, output_type)
    converter._experimental_calibrate_only = True
    return mlir_quantize(
        converter.convert(),
        input_data_type=input_type,
        output_data_type=output_type,
        denylisted_nodes=list(float_nodes),
    )


def convert_keras_model(
    model, modes, representative_inputs=None, input_type="uint8", what="model", keep_float=None, int8_output="int8"
):
    """Converts a functional Keras model to TFLite bytes, one per mode.

    Args:
        model: a Keras model with named inputs; the TFLite signature keeps the
            input names and the names of a dict of outputs.
        modes: subset of `MODES`.
        representative_inputs: for `int8`, a list of dicts (input name -> array
            with a batch of one) the converter calibrates activation ranges on.
        input_type: dtype of a quantized model's first input, "uint8" or "int8";
            a model with several inputs (the scorer) gets int8 on all.
        what: how error messages name the model.
        keep_float: for `int8`, a function of the float32 model's bytes giving
            the names of tensors to keep in float (see `export.float_ops`).
        int8_output: dtype of the int8 model's outputs, "int8" or "float32"
            (needed when `keep_float` leaves an output in float).

    Returns:
        `{mode: bytes}`.

    Raises:
        UnsupportedOpsError: the model needs a Flex or custom op (named).
    """
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        raise UserError(f"unknown export modes {unknown}; choose from {list(MODES)}")
    if input_type not in INPUT_TYPES:
        raise UserError(f"input_type must be one of {INPUT_TYPES}, got {input_type!r}")
    if "int8" in modes and not representative_inputs:
        raise UserError(f"int8 export of the {what} needs calibration images (representative inputs): "
                        "give --calibration-root")
    quantized_input = tf.int8 if isinstance(model.input, dict) else getattr(tf, input_type)
    converted = {}
    # float32 first: the int8 conversion may need its graph (`keep_float`).
    ordered = sorted(modes, key=lambda mode: mode != "float32")
    with _saved_model(model) as saved_model_dir:
        for mode in ordered:
            try:
                if mode == "int8" and keep_float is not None:
                    if "float32" not in converted:
                        converted["float32"] = _converter(saved_model_dir, "float32", None, None).convert()
                    converted[mode] = _selectively_quantized(
                        saved_model_dir,
                        representative_inputs,
                        quantized_input,
                        getattr(tf, int8_output),
                        keep_float(converted["float32"]),
                    )
                else:
                    converter = _converter(
                        saved_model_dir, mode, representative_inputs, quantized_input, getattr(tf, int8_output)
                    )
                    converted[mode] = converter.convert()
            except Exception as error:
                _raise_if_not_builtin(saved_model_dir, what, error)
                raise
            check_builtin_ops(converted[mode], f"the {mode} {what}")
    return {mode: converted[mode] for mode in modes}


def _raise_if_not_builtin(saved_model_dir, what, error):
    """Names the ops outside TFLITE_BUILTINS when a builtins-only conversion failed.

    Converts again with Flex and custom ops allowed and reads the op list of the
    result, rather than parsing the converter's error text.
    """
    probe = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    probe.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    probe.allow_custom_ops = True
    try:
        model_bytes = probe.convert()
    except Exception:
        return  # not an op-set problem: the original error says more
    try:
        check_builtin_ops(model_bytes, f"the {what}")
    except UnsupportedOpsError as unsupported:
        raise unsupported from error


def _pin_pixel_range(images):
    """Copies the calibration images with one pixel at 0 and one at 255.

    The int8 image input is then calibrated to exactly [0, 255] (uint8: scale 1,
    zero point 0), so a camera's pixels quantize exactly, whatever the
    calibration images' own extremes.
    """
    images = np.array(images, np.float32)
    images[0, 0, 0, :] = 0.0
    images[0, 0, 1, :] = 255.0
    return images


def _extractor_samples(images):
    return [{"images": image[None]} for image in images]


def _scorer_samples(features, names, ids, seed):
    """Calibration pairs for the scorer: same-identity and different-identity, both orders.

    Both orders make the a- and b-inputs see the same values, so they get the same
    quantization. Without identities, half the pairs are an image with itself (the
    most similar pair there is, so the ranges cover real same-person pairs) and
    half random pairs.
    """
    count = len(features[names[0]])
    if ids is None:
        half = np.arange(count // 2 or 1)
        first = np.concatenate([half, half])
        second = np.concatenate([half, np.random.default_rng(seed).permutation(count)[: len(half)]])
    else:
        first, second, _ = threshold_lib.sample_pairs(ids, count, seed)
    inputs = []
    for i, j in zip(first, second):
        a = {name: features[name][i : i + 1] for name in names}
        b = {name: features[name][j : j + 1] for name in names}
        for x, y in ((a, b), (b, a)):
            sample = {f"a_{name}": x[name] for name in names}
            sample.update({f"b_{name}": y[name] for name in names})
            inputs.append(sample)
    return inputs


def _calibrate_threshold(model, extractor, images, ids, num_pairs, seed):
    """Best balanced-accuracy threshold of the Keras float scores on labelled pairs."""
    if images is None:
        return 0.5, {"method": "default: no labelled images given, 0.5 is the sigmoid's decision boundary"}
    first, second, is_same = threshold_lib.sample_pairs(ids, num_pairs, seed)
    features = extractor.predict(np.asarray(images, np.float32), batch_size=64, verbose=0)
    if model.levels:
        names = model.scorer_feature_names
        pair_inputs = {f"a_{name}": features[name][first] for name in names}
        pair_inputs.update({f"b_{name}": features[name][second] for name in names})
        scores = model.scorer("grouped").predict(pair_inputs, batch_size=256, verbose=0)["score"]
        score_kind = "csn_score"
    else:
        embedding = features["embedding"]
        scores = np.sum(embedding[first] * embedding[second], axis=-1)
        score_kind = "embedding_cosine"
    value, accuracy = threshold_lib.best_threshold(scores, is_same)
    return value, {
        "method": "max_balanced_accuracy",
        "score": score_kind,
        "positive_pairs": int(is_same.sum()),
        "negative_pairs": int((~is_same).sum()),
        "balanced_accuracy": accuracy,
    }


def _smoke_test(model_bytes, inputs, what):
    """Runs a converted model at batch 2 under LiteRT; returns its tensor descriptions."""
    runtime = TFLiteModel(model_bytes)
    outputs = runtime(**inputs)
    for name, value in outputs.items():
        if len(value) != 2 or not np.all(np.isfinite(value)):
            raise RuntimeError(f"{what}: output {name!r} is wrong at batch 2 (shape {value.shape})")
    return list(runtime.inputs.values()), list(runtime.outputs.values())


def _load(model_or_path):
    if isinstance(model_or_path, keras.Model):
        return model_or_path, {"path": None, "sha256": None}
    from keras_msreid.models import load_model

    path = os.path.abspath(os.fspath(model_or_path))
    return load_model(path), {"path": path, "sha256": sha256_of_file(path)}


def export_model(
    model_or_path,
    out_dir,
    modes=MODES,
    calibration_images=None,
    calibration_ids=None,
    input_type="uint8",
    threshold_images=None,
    threshold_ids=None,
    threshold_pairs=2000,
    seed=0,
):
    """Writes `extractor_<mode>.tflite`, `scorer_<mode>.tflite` and `metadata.json` to `out_dir`.

    Args:
        model_or_path: an `MSReID` model or the path of its `.keras` file.
        out_dir: folder to write (created if needed).
        modes: subset of `MODES`.
        calibration_images: `(N, H, W, 3)` RGB in [0, 255] at the model's image
            size, training images; needed for `int8` (about 200 are enough).
        calibration_ids: their identities, to calibrate the scorer on
            same-person as well as different-person pairs (optional).
        input_type: the int8 extractor's image input, "uint8" or "int8".
        threshold_images, threshold_ids: labelled held-out images for the match
            threshold (see `export.threshold`); without them the threshold is 0.5.
        threshold_pairs: pairs drawn from them (half same-identity).
        seed: seeds the calibration and threshold pairs.

    Returns:
        The metadata dict also written to `out_dir/metadata.json`.
    """
    model, source = _load(model_or_path)
    modes = list(dict.fromkeys(modes))
    if not modes:
        raise UserError("give at least one export mode")
    if threshold_images is not None and threshold_ids is None:
        raise UserError("threshold_images need threshold_ids")
    extractor = model.extractor()
    representative, smoke_images = calibration_samples(model, extractor, calibration_images, calibration_ids, seed)
    converted = _convert(model, extractor, modes, representative, input_type)
    match_threshold, calibration = _calibrate_threshold(
        model, extractor, threshold_images, threshold_ids, threshold_pairs, seed
    )
    models = smoke_tested_entries(model, extractor, converted, smoke_images, modes)
    metadata = _metadata(model, modes, input_type, match_threshold, calibration, source, models)
    write_export(out_dir, metadata, {
        models[mode][role]["file"]: model_bytes for role, per_mode in converted.items() for mode, model_bytes in per_mode.items()
    })
    return metadata


def calibration_samples(model, extractor, calibration_images, calibration_ids, seed):
    """The converters' representative samples per role (None: no int8) and two images for the smoke test."""
    image_size = tuple(model.image_size)
    names = model.scorer_feature_names
    representative = {"extractor": None, "scorer": None}
    if calibration_images is None:
        smoke_images = np.random.default_rng(seed).uniform(0, 255, (2,) + image_size + (3,)).astype(np.float32)
        return representative, smoke_images
    calibration_images = np.asarray(calibration_images, np.float32)
    if calibration_images.ndim != 4 or calibration_images.shape[1:] != image_size + (3,):
        raise UserError(
            f"calibration_images must be (N, {image_size[0]}, {image_size[1]}, 3), got {calibration_images.shape}"
        )
    pinned = _pin_pixel_range(calibration_images)
    representative["extractor"] = _extractor_samples(pinned)
    if names:
        features = extractor.predict(pinned, batch_size=64, verbose=0)
        representative["scorer"] = _scorer_samples(features, names, calibration_ids, seed)
    return representative, calibration_images[:2]


def _convert(model, extractor, modes, representative, input_type):
    """`{role: {mode: TFLite bytes}}` of the extractor and (with a pair head) the scorer."""
    keras_models = {"extractor": extractor}
    if model.scorer_feature_names:
        # One query (the a-side, a batch of 1) against many gallery rows: its patch is
        # the run-time kernel of a DEPTHWISE_CONV_2D over their maps, the fastest builtin
        # form under LiteRT (docs/RESULTS.md, "A query-major scorer, computing in float
        # on int8 features").
        keras_models["scorer"] = model.scorer("one_to_many", context="grouped")
    return {
        role: convert_keras_model(
            keras_model,
            modes,
            representative[role],
            input_type,
            what=role,
            keep_float=functools.partial(float_islands, role),
            int8_output="float32",
        )
        for role, keras_model in keras_models.items()
    }


def smoke_tested_entries(model, extractor, converted, smoke_images, modes):
    """Runs every converted model once; `{mode: {role: its metadata entry}}` (file name, hash, signature, ops)."""
    names = model.scorer_feature_names
    smoke_features = extractor.predict(smoke_images, verbose=0)
    smoke_inputs = {"extractor": {"images": smoke_images}}
    if names:
        smoke_inputs["scorer"] = {f"a_{name}": smoke_features[name][:1] for name in names}
        smoke_inputs["scorer"].update({f"b_{name}": smoke_features[name] for name in names})
    models = {mode: {} for mode in modes}
    for role, per_mode in converted.items():
        for mode, model_bytes in per_mode.items():
            inputs, outputs = _smoke_test(model_bytes, smoke_inputs[role], f"the {mode} {role}")
            digest = hashlib.sha256(model_bytes).hexdigest()
            models[mode][role] = {
                "file": f"{role}_{mode}-{digest[:12]}.tflite",
                "sha256": digest,
                "bytes": len(model_bytes),
                "inputs": inputs,
                "outputs": outputs,
                "ops": list_ops(model_bytes),
            }
    return models


def _metadata(model, modes, input_type, match_threshold, calibration, source, models):
    backbone_config = model.backbone.get_config()
    return {
        "format_version": FORMAT_VERSION,
        "image_size": list(model.image_size),
        "input": {"color": "RGB", "pixel_range": [0, 255], "layout": "NHWC"},
        "embedding_dim": model.backbone.embedding_dim,
        "levels": list(model.levels),
        # STN patches per level and their size; None for a backbone without them (a peer).
        "parts": backbone_config.get("parts"),
        "patch_size": list(backbone_config["patch_size"]) if "patch_size" in backbone_config else None,
        "scorer_feature_names": model.scorer_feature_names,
        "signature": SIGNATURE_KEY,
        "match_threshold": match_threshold,
        "match_threshold_calibration": calibration,
        "int8_input_type": input_type if "int8" in modes else None,
        "source_model": source,
        "models": models,
    }


def write_export(out_dir, metadata, files):
    """Writes `files` (name -> bytes), then `metadata.json` (the commit), then drops the previous export's files.

    A file already there under its content-hashed name is kept as it is. A
    `metadata.json` that is not an export's is refused before anything is written.
    """
    out_dir = pathlib.Path(out_dir)
    previous = _previous_files(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        path = out_dir / name
        if path.exists() and sha256_of_file(path) == hashlib.sha256(data).hexdigest():
            continue
        if path.exists():
            raise UserError(f"{path} exists and is not the file this export names: move it away")
        atomic_write_bytes(path, data)
    atomic_write_bytes(out_dir / METADATA_NAME, (json.dumps(metadata, indent=2) + "\n").encode("utf-8"))
    for name, digest in previous.items():
        path = out_dir / name
        if name not in files and path.is_file() and sha256_of_file(path) == digest:
            path.unlink()


def _previous_files(out_dir):
    """Name -> sha256 of the model files the export already in `out_dir` names ({} if there is none)."""
    path = out_dir / METADATA_NAME
    if not path.exists():
        return {}
    try:
        metadata = json.loads(path.read_text())
        entries = [entry for per_mode in metadata["models"].values() for entry in per_mode.values()]
        previous = {entry["file"]: entry["sha256"] for entry in entries}
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise UserError(f"{path} is not the metadata of an msreid export ({type(error).__name__}: {error}): "
                        "export into another folder") from None
    # Only plain names inside the folder: a metadata file must not make the export remove anything else.
    return {name: digest for name, digest in previous.items() if pathlib.Path(name).name == name}
