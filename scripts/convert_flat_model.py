"""Converts, once, an MSReID `.keras` file saved before the backbone and the pair head were apart.

Until 2026-12-01 an MSReID held every layer itself and saved one flat list of
options; it is now a task over an `MSReIDBackbone` and an `MSReIDPairHead`. The
layers and their weights are the same, only where they sit changed, so this copies
every weight array across by a fixed path rule and checks that each old array is
used exactly once with its shape. The optimizer state is not carried over: the
converted model is for evaluation, export, or fine-tuning with a new optimizer.

Usage:
    python scripts/convert_flat_model.py OLD.keras NEW.keras
"""

import argparse
import io
import json
import re
import sys
import tempfile
import zipfile
from pathlib import Path

import h5py

from keras_msreid.errors import UserError

# Option names of the flat MSReID that are not model options.
NOT_OPTIONS = {"name", "trainable", "dtype", "num_classes"}


def _old_path(new_path):
    """The flat model's weight path of one weight path of the split model (None: not a model weight)."""
    rules = [
        (r"^backbone/layers/functional/(.*)$", r"layers/functional/\1"),
        (r"^backbone/embedding_head/(.*)$", r"embedding_head/\1"),
        (r"^backbone/layers/similarity_features(_\d+)?/(.*)$", r"layers/conv_similarity\1/\2"),
        (r"^layers/[^/]+/similarities/conv_similarity(_\d+)?/(.*)$", r"layers/conv_similarity\1/\2"),
        (r"^layers/[^/]+/fusion/(.*)$", r"fusion/\1"),
        (r"^(classifier/.*)$", r"\1"),
    ]
    for pattern, replacement in rules:
        if re.match(pattern, new_path):
            return re.sub(pattern, replacement, new_path)
    return None


def _datasets(h5file):
    found = {}
    h5file.visititems(lambda name, item: found.__setitem__(name, item) if isinstance(item, h5py.Dataset) else None)
    return found


def convert(old_file, new_file):
    from keras_msreid.models import MSReID
    from keras_msreid.utils.atomic import atomic_path

    try:
        archive = zipfile.ZipFile(old_file)
        config = json.loads(archive.read("config.json"))
        old_weights = archive.read("model.weights.h5")
    except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as error:
        raise UserError(f"{old_file} is not a .keras model file ({error})") from None
    flat = config.get("config", {})
    if config.get("class_name") != "MSReID" or "backbone" in flat:
        raise UserError(f"{old_file} is not a flat MSReID of an earlier keras_msreid: nothing to convert")
    options = {key: value for key, value in flat.items() if key not in NOT_OPTIONS}
    model = MSReID.from_options(num_classes=flat.get("num_classes"), **options)
    model.build()
    if config.get("compile_config"):
        model.compile_from_config(config["compile_config"])  # loss weights and options; a fresh optimizer
    with tempfile.TemporaryDirectory() as folder:
        template = Path(folder) / "template.keras"
        model.save(template)
        with zipfile.ZipFile(template) as saved:
            members = {name: saved.read(name) for name in saved.namelist()}
    weights = io.BytesIO(members["model.weights.h5"])
    with h5py.File(io.BytesIO(old_weights), "r") as old, h5py.File(weights, "r+") as new:
        old_sets, used = _datasets(old), set()
        for path, dataset in _datasets(new).items():
            source = _old_path(path)
            if source is None:
                continue  # optimizer state of the fresh optimizer
            if source not in old_sets or old_sets[source].shape != dataset.shape:
                raise UserError(f"{old_file}: no weight {source} of shape {dataset.shape} for {path}: "
                                "not a model this script knows")
            dataset[...] = old_sets[source][...]
            used.add(source)
        left = sorted(path for path in old_sets if path not in used and _is_model_weight(path))
        if left:
            raise UserError(f"{old_file}: weights {left[:3]} have no place in the converted model")
    members["model.weights.h5"] = weights.getvalue()
    with atomic_path(new_file) as temporary:
        with zipfile.ZipFile(temporary, "w") as converted:
            for name, data in members.items():
                converted.writestr(name, data)
    return model


def _is_model_weight(path):
    return not path.startswith("optimizer/")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("old", help="the flat MSReID .keras file")
    parser.add_argument("new", help="where to write the converted .keras file (must not exist)")
    args = parser.parse_args(argv)
    try:
        if Path(args.new).exists():
            raise UserError(f"{args.new} exists: give a new path")
        convert(args.old, args.new)
    except (UserError, OSError) as error:
        print(f"convert_flat_model: error: {error}", file=sys.stderr)
        return 2
    print(f"converted {args.old} -> {args.new}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
