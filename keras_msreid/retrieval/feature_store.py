"""Per-image features on disk: extracted once, reloaded memory-mapped without the images.

Layout of a store directory:

    DIR/manifest.json          the committed store (written last, atomically)
    DIR/data-<id>/<name>.npy   one array per feature, row i = image i (np.load(mmap_mode="r"))
    DIR/partial.json           only while an extraction is unfinished: how far it got

`manifest.json` holds `format`, `version`, `model_sha256` (of the model file the
features came from), `image_size`, `count`, `features` (per name: per-image `shape`,
`dtype` and `file`), and the images' `paths`, `pids` and `camids`.

Writes are crash-safe: a new extraction fills a fresh `data-<id>` folder in chunks;
after each chunk it flushes the arrays and then atomically rewrites `partial.json`
with the number of rows done. Only when every row is written is `manifest.json`
replaced, which is the commit. Killed at any moment, the directory still loads as
the previous complete store (if any), never as the partial one, and running the same
extraction again resumes after the last recorded chunk. A store removes only the
files its own `manifest.json` or `partial.json` names (each data folder is recorded
before it is created), and refuses a non-empty folder that holds no store, so that
nothing else in the folder is ever touched. TensorFlow-free.

Example:

>>> store = write_feature_store("stores/gallery", records, batches, model_sha256=sha256_of_file("m.keras"),
...                             image_size=(160, 64))
>>> store = FeatureStore.load("stores/gallery")
>>> store.features["embedding"].shape
(15913, 128)
"""

import contextlib
import hashlib
import json
import pathlib
import re
import time
import uuid

import numpy as np

from keras_msreid.errors import UserError
from keras_msreid.retrieval.progress import Progress
from keras_msreid.utils.atomic import atomic_write_text

FORMAT = "keras_msreid.feature_store"
VERSION = 1
MANIFEST_NAME = "manifest.json"
PARTIAL_NAME = "partial.json"
_FEATURE_NAME = re.compile(r"^[A-Za-z0-9_]+$")


class FeatureStore:
    """A complete store: `features` (name -> array, memory-mapped), `paths`, `pids`, `camids`.

    Build one with `write_feature_store`; open one with `FeatureStore.load(directory)`.
    """

    def __init__(self, directory, manifest, features):
        self.directory = pathlib.Path(directory)
        self.manifest = manifest
        self.features = features
        self.paths = list(manifest["paths"])
        self.pids = np.asarray(manifest["pids"], np.int64)
        self.camids = np.asarray(manifest["camids"], np.int64)

    @property
    def count(self):
        return int(self.manifest["count"])

    @property
    def model_sha256(self):
        return self.manifest["model_sha256"]

    @property
    def image_size(self):
        return tuple(self.manifest["image_size"])

    @classmethod
    def load(cls, directory, mmap=True):
        """Opens the committed store in `directory`; arrays are memory-mapped unless `mmap=False`.

        Raises:
            FileNotFoundError: no committed store (also when only an unfinished
                extraction is there, saying how far it got).
            ValueError: a manifest of another format or version, or a feature file
                whose shape or dtype disagrees with the manifest.
        """
        directory = pathlib.Path(directory)
        manifest = _read_json(directory / MANIFEST_NAME)
        if manifest is None:
            partial = _read_json(directory / PARTIAL_NAME)
            if partial is not None:
                raise FileNotFoundError(
                    f"{directory} holds an unfinished extraction ({partial['done']}/{partial['count']} images): "
                    "run the same extraction again to resume it"
                )
            raise FileNotFoundError(f"no feature store in {directory} (no {MANIFEST_NAME})")
        if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
            raise UserError(
                f"{directory / MANIFEST_NAME} is not a version-{VERSION} {FORMAT} manifest "
                f"(format {manifest.get('format')!r}, version {manifest.get('version')!r})"
            )
        features = {}
        for name, spec in manifest["features"].items():
            path = directory / spec["file"]
            try:
                array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
            except (OSError, ValueError) as error:
                raise UserError(f"feature file {path} cannot be read: {error}") from error
            expected = (manifest["count"], *spec["shape"])
            if array.shape != expected or array.dtype != np.dtype(spec["dtype"]):
                raise UserError(
                    f"feature file {path} holds {array.dtype}{list(array.shape)}, "
                    f"the manifest says {spec['dtype']}{list(expected)}"
                )
            features[name] = array
        return cls(directory, manifest, features)


def write_feature_store(directory, records_or_paths, batches, *, model_sha256, image_size, chunk_size=1024,
                        progress=True):
    """Writes (or resumes, or reuses) the store of `records_or_paths` in `directory`.

    Args:
        directory: store directory, created if needed.
        records_or_paths: objects with `.path`, `.pid`, `.camid` (e.g. `ImageRecord`)
            or plain paths (pid and camid -1).
        batches: `batches(start)` yields dicts of per-image feature arrays (name ->
            `(batch, ...)`) for images `start, start + 1, ...` in order.
        model_sha256: identity of the model the features come from.
        image_size: `(height, width)` the images were resized to.
        chunk_size: images written between two progress records; a killed run
            loses at most this many images of work.
        progress: print a progress line on stderr.

    Returns:
        The `FeatureStore`. An existing complete store of the same model, image size
        and images is returned as is; an unfinished one is resumed.
    """
    directory = pathlib.Path(directory)
    paths, pids, camids = _unpack(records_or_paths)
    _refuse_foreign_folder(directory)
    directory.mkdir(parents=True, exist_ok=True)
    identity = {
        "model_sha256": str(model_sha256),
        "image_size": [int(v) for v in image_size],
        "count": len(paths),
        "paths_sha256": hashlib.sha256("\n".join(paths).encode()).hexdigest(),
    }
    committed = _read_json(directory / MANIFEST_NAME)
    if committed is not None and all(committed.get(key) == value for key, value in identity.items()):
        return FeatureStore.load(directory)
    partial = _read_json(directory / PARTIAL_NAME)
    resumable = (
        partial is not None
        and all(partial.get(key) == value for key, value in identity.items())
        and (directory / partial["data"]).is_dir()
    )
    if not resumable:
        if partial is not None and partial.get("data") != (committed or {}).get("data"):
            _remove_data_folder(directory, partial)  # an unfinished extraction of other images: ours to drop
        partial = dict(identity, data=_new_data_name(directory), done=0, features=None)
        # Recorded before it exists, so that whatever a kill leaves behind is known to be ours.
        atomic_write_text(directory / PARTIAL_NAME, json.dumps(partial))
    data_dir = directory / partial["data"]
    data_dir.mkdir(exist_ok=True)

    arrays = None if partial["features"] is None else {
        name: np.lib.format.open_memmap(directory / spec["file"], mode="r+") for name, spec in partial["features"].items()
    }
    meter = Progress(len(paths), "extracting features", enabled=progress)
    meter.done = written = partial["done"]
    for batch in (batches(written) if written < len(paths) else ()):
        if arrays is None:
            partial["features"] = _feature_specs(batch, partial["data"])
            atomic_write_text(directory / PARTIAL_NAME, json.dumps(partial))
            arrays = {
                name: np.lib.format.open_memmap(
                    directory / spec["file"], mode="w+", dtype=spec["dtype"], shape=(len(paths), *spec["shape"])
                )
                for name, spec in partial["features"].items()
            }
        size = _batch_size(batch, partial["features"])
        if written + size > len(paths):
            raise ValueError(f"batches gave more than the {len(paths)} images of the store")
        for name, array in arrays.items():
            array[written : written + size] = batch[name]
        written += size
        meter.update(size)
        if written - partial["done"] >= chunk_size or written == len(paths):
            for array in arrays.values():
                array.flush()
            partial["done"] = written
            atomic_write_text(directory / PARTIAL_NAME, json.dumps(partial))
    meter.close()
    if written != len(paths):
        raise ValueError(f"batches stopped after {written} of the {len(paths)} images of the store")

    manifest = {
        "format": FORMAT,
        "version": VERSION,
        **identity,
        "data": partial["data"],
        "features": partial["features"],
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "paths": paths,
        "pids": pids,
        "camids": camids,
    }
    del arrays
    atomic_write_text(directory / MANIFEST_NAME, json.dumps(manifest))  # the commit
    (directory / PARTIAL_NAME).unlink(missing_ok=True)
    if committed is not None and committed["data"] != partial["data"]:
        _remove_data_folder(directory, committed)
    return FeatureStore.load(directory)


def _refuse_foreign_folder(directory):
    """A store is written only into a missing or empty folder, or one that already holds a store."""
    if directory.exists() and not directory.is_dir():
        raise UserError(f"--store {directory} is a file, not a feature store folder")
    if not directory.is_dir() or (directory / MANIFEST_NAME).exists() or (directory / PARTIAL_NAME).exists():
        return
    if any(directory.iterdir()):
        raise UserError(f"--store {directory} is not empty and holds no feature store ({MANIFEST_NAME}): "
                        "give a new or empty folder")


def _new_data_name(directory):
    while True:
        name = f"data-{uuid.uuid4().hex[:12]}"
        if not (directory / name).exists():
            return name


def _remove_data_folder(directory, record):
    """Removes the files that `record` (a manifest or partial record) says this store wrote, then their folder."""
    folder = directory / record["data"]
    for spec in (record.get("features") or {}).values():
        (directory / spec["file"]).unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not empty: something else lives there, and stays
        folder.rmdir()


def _unpack(records_or_paths):
    paths, pids, camids = [], [], []
    for item in records_or_paths:
        paths.append(str(getattr(item, "path", item)))
        pids.append(int(getattr(item, "pid", -1)))
        camids.append(int(getattr(item, "camid", -1)))
    if not paths:
        raise ValueError("write_feature_store got no images")
    return paths, pids, camids


def _feature_specs(batch, data_name):
    specs = {}
    for name, value in batch.items():
        if not _FEATURE_NAME.match(name):
            raise ValueError(f"feature name {name!r} is not a valid file name (letters, digits, _)")
        value = np.asarray(value)
        specs[name] = {"shape": list(value.shape[1:]), "dtype": value.dtype.str, "file": f"{data_name}/{name}.npy"}
    return specs


def _batch_size(batch, specs):
    if set(batch) != set(specs):
        raise ValueError(f"a batch has features {sorted(batch)}, the store {sorted(specs)}")
    sizes = {len(value) for value in batch.values()}
    if len(sizes) != 1:
        raise ValueError(f"the features of one batch differ in length: {sorted(sizes)}")
    for name, value in batch.items():
        if list(np.shape(value)[1:]) != specs[name]["shape"]:
            raise ValueError(f"feature {name!r} has per-image shape {list(np.shape(value)[1:])}, "
                             f"the store {specs[name]['shape']}")
    return sizes.pop()


def _read_json(path):
    try:
        return json.loads(pathlib.Path(path).read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as error:
        raise UserError(f"{path} is not valid JSON: {error}") from error
