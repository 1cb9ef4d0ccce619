"""Per-image features on disk, compact, grown in place, reloaded memory-mapped without the images.

Layout of a store directory:

    DIR/manifest.json              the committed store (written last, atomically)
    DIR/data-<id>/<name>.<array>.npy   one segment's encoded arrays, row i = its image i
    DIR/data-<id>/images.json      that segment's image ids, paths, pids and camids
    DIR/index-<id>.faiss           the saved shortlist index over every segment's embeddings
    DIR/partial.json               only while an extraction is unfinished: how far it got

`manifest.json` holds `format`, `version`, `model_sha256` (of the model file the
features came from), `image_size`, `features` (per name: a `FeatureCodec`, i.e. its
encoding, per-image shape and the cells kept), `segments` (in order), `removed`
(ids of images taken out), `next_id` and `index`. Every image has a stable integer
id, never reused: a store draws a random 31-bit prefix when it is created and numbers
its images under it (`id = prefix << 32 | n`), so the ids of stores extracted apart
(one per camera, per day, per machine) differ too, and `merge_feature_stores` can bring
such shards together with every image keeping its id.

Growing and shrinking: `add_to_feature_store` extracts only new images into a new
segment; `remove_from_feature_store` records ids as removed (their rows stay on disk
and are skipped; the index skips them too); `compact_feature_store` copies the live
rows of every segment into one new segment, so removed rows leave the disk and many
appends stop costing a segment each (ids and order kept, nothing extracted);
`write_feature_store` makes a store hold exactly the given images, by removing and
adding, or by extracting everything again when the model, the image size or the
encodings differ; `merge_feature_stores` copies other stores' live images (codes, ids,
paths and labels) into a store of the same model and codecs.

Writes are crash-safe: an extraction (or a compaction or a merge) fills a fresh `data-<id>` folder in chunks;
after each chunk it flushes the arrays and then atomically rewrites `partial.json`
with the number of rows done. Only when every row is written (and the index
extended) is `manifest.json` replaced, which is the commit. Killed at any moment, the
directory still loads as the previous complete store (if any), never as the partial
one, and running the same extraction again resumes after the last recorded chunk. A
store removes only the files its own `manifest.json` or `partial.json` names (each
data folder is recorded before it is created), and refuses a non-empty folder that
holds no store, so that nothing else in the folder is ever touched. TensorFlow-free.

Example:

>>> store = write_feature_store("stores/gallery", records, extract, model_sha256=sha256_of_file("m.keras"),
...                             image_size=(160, 64), codecs=store_codecs(model))
>>> store = FeatureStore.load("stores/gallery")
>>> store.features["embedding"].shape
(15913, 128)
>>> similarities, rows = store.index().search(query_embeddings, k=100)
"""

import contextlib
import hashlib
import json
import pathlib
import re
import secrets
import time
import uuid

import numpy as np

from keras_msreid.errors import UserError
from keras_msreid.retrieval.encoding import EncodedFeature, FeatureCodec
from keras_msreid.retrieval.progress import Progress
from keras_msreid.retrieval.shortlist import EmbeddingIndex, faiss_available
from keras_msreid.utils.atomic import atomic_write_bytes, atomic_write_text

FORMAT = "keras_msreid.feature_store"
VERSION = 2
MANIFEST_NAME = "manifest.json"
PARTIAL_NAME = "partial.json"
IMAGES_NAME = "images.json"
_FEATURE_NAME = re.compile(r"^[A-Za-z0-9_]+$")
# A store numbers its images under a random prefix: ids of separately made stores differ
# (two of 1,000 stores share a prefix with probability 2e-4, and a merge refuses them).
ID_COUNTER_BITS = 32


class FeatureStore:
    """A complete store: `features` (name -> `EncodedFeature`), `ids`, `paths`, `pids`, `camids`.

    Only images not removed are present, in the order they were added. Build one
    with `write_feature_store`; open one with `FeatureStore.load(directory)`.
    """

    def __init__(self, directory, manifest, features, images, live_rows):
        self.directory = pathlib.Path(directory)
        self.manifest = manifest
        self.features = features
        self.ids = np.asarray(images["ids"], np.int64)
        self.paths = list(images["paths"])
        self.pids = np.asarray(images["pids"], np.int64)
        self.camids = np.asarray(images["camids"], np.int64)
        self._live_rows = live_rows  # live image i is row live_rows[i] of all segments together

    @property
    def count(self):
        return len(self.paths)

    @property
    def model_sha256(self):
        return self.manifest["model_sha256"]

    @property
    def image_size(self):
        return tuple(self.manifest["image_size"])

    @property
    def codecs(self):
        return {name: FeatureCodec.from_json(spec) for name, spec in self.manifest["features"].items()}

    @property
    def bytes_per_image(self):
        """Bytes of features kept per image (all features, as encoded)."""
        return sum(codec.bytes_per_image for codec in self.codecs.values())

    def index(self):
        """The shortlist index over this store's embeddings: `.search(queries, k)` -> live rows.

        The saved FAISS index when the store has one (and FAISS is importable),
        else an exact numpy index.
        """
        total = sum(segment["count"] for segment in self.manifest["segments"])
        saved = self.manifest.get("index")
        if saved is None or not faiss_available():
            return EmbeddingIndex(np.asarray(self.features["embedding"]), backend="numpy")
        path = self.directory / saved["file"]
        try:
            index = EmbeddingIndex.from_bytes(path.read_bytes())
        except (OSError, RuntimeError) as error:
            raise UserError(f"shortlist index {path} cannot be read: {error}") from error
        if index.size != total:
            raise UserError(f"shortlist index {path} holds {index.size} rows, the store's segments {total}")
        if len(self._live_rows) == total:
            return index
        return _LiveRowsIndex(index, self._live_rows, total)

    @classmethod
    def load(cls, directory, mmap=True):
        """Opens the committed store in `directory`; arrays are memory-mapped unless `mmap=False`.

        Raises:
            FileNotFoundError: no committed store (also when only an unfinished
                extraction is there, saying how far it got).
            UserError: a manifest of another format or version, or a feature file
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
        _check_version(directory, manifest)
        codecs = {name: FeatureCodec.from_json(spec) for name, spec in manifest["features"].items()}
        segments = [_load_segment(directory, segment, codecs, mmap) for segment in manifest["segments"]]
        removed = set(manifest["removed"])
        images = {key: [] for key in ("ids", "paths", "pids", "camids")}
        alive = []
        for _, segment_images in segments:
            alive.append(np.array([image_id not in removed for image_id in segment_images["ids"]], bool))
            for key in images:
                images[key].extend(value for value, keep in zip(segment_images[key], alive[-1]) if keep)
        alive = np.concatenate(alive)
        live_rows = np.nonzero(alive)[0]
        # Memory-mapped segments stay on disk; removed rows are skipped through `rows`.
        features = {
            name: EncodedFeature(codec, {array_name: [arrays_of[name][array_name] for arrays_of, _ in segments]
                                         for array_name in codec.array_specs()},
                                 rows=None if alive.all() else live_rows)
            for name, codec in codecs.items()
        }
        return cls(directory, manifest, features, images, live_rows)


class _LiveRowsIndex:
    """An index over all segments' rows that skips removed images and answers in live rows."""

    def __init__(self, index, live_rows, total):
        self._index = index
        self._to_live = np.full(total, -1, np.int64)
        self._to_live[live_rows] = np.arange(len(live_rows))
        self._removed = np.flatnonzero(self._to_live < 0)
        self.size, self.dim, self.backend = len(live_rows), index.dim, index.backend

    def search(self, queries, k):
        similarities, rows = self._index.search(queries, k, excluded=self._removed)
        return similarities, self._to_live[rows]


def write_feature_store(directory, records_or_paths, extract, *, model_sha256, image_size, codecs,
                        chunk_size=1024, progress=True, index_backend="auto"):
    """Makes the store in `directory` hold exactly these images' features, extracting only what it lacks.

    Args:
        directory: store directory, created if needed.
        records_or_paths: objects with `.path`, `.pid`, `.camid` (e.g. `ImageRecord`)
            or plain paths (pid and camid -1); paths must be unique.
        extract: `extract(items)` yields dicts of per-image float feature arrays
            (name -> `(batch, ...)`) for `items` (a sub-list of `records_or_paths`)
            in order.
        model_sha256: identity of the model the features come from.
        image_size: `(height, width)` the images were resized to.
        codecs: name -> `FeatureCodec`: which features to keep and how.
        chunk_size: images written between two progress records; a killed run
            loses at most this many images of work.
        progress: print a progress line on stderr.
        index_backend: the saved shortlist index's `EmbeddingIndex` backend.

    Returns:
        The `FeatureStore`. A store of the same model, image size and codecs keeps
        its features: images not given are removed, new ones added (a resumed or
        repeated call extracts nothing twice); any other store is extracted anew.
    """
    directory = pathlib.Path(directory)
    items, paths = _unique_items(records_or_paths)
    _refuse_foreign_folder(directory)
    committed = _committed_manifest(directory)
    if committed is not None and _same_features(committed, model_sha256, image_size, codecs):
        store = FeatureStore.load(directory)
        wanted = set(paths)
        gone = [path for path in store.paths if path not in wanted]
        if gone:
            store = remove_from_feature_store(directory, gone)
        held = set(store.paths)
        new = [item for item, path in zip(items, paths) if path not in held]
        if not new:
            return store
        return _write_segment(directory, new, extract, model_sha256, image_size, codecs, chunk_size, progress,
                              index_backend, append=True)
    return _write_segment(directory, items, extract, model_sha256, image_size, codecs, chunk_size, progress,
                          index_backend, append=False)


def add_to_feature_store(directory, records_or_paths, extract, chunk_size=1024, progress=True):
    """Appends images to the committed store in `directory` without extracting the old ones again.

    `extract` as for `write_feature_store`, with the store's model. Images whose
    path the store already holds are refused.
    """
    directory = pathlib.Path(directory)
    store = FeatureStore.load(directory)
    items, paths = _unique_items(records_or_paths)
    held = set(store.paths).intersection(paths)
    if held:
        raise UserError(f"store {directory} already holds {len(held)} of these images, e.g. {sorted(held)[0]}")
    backend = (store.manifest.get("index") or {}).get("backend", "numpy")
    return _write_segment(directory, items, extract, store.model_sha256, store.image_size, store.codecs,
                          chunk_size, progress, backend, append=True)


def remove_from_feature_store(directory, paths):
    """Takes the images with these paths out of the committed store in `directory` (one atomic commit).

    Paths the store does not hold are an error, and nothing is removed then.
    """
    directory = pathlib.Path(directory)
    store = FeatureStore.load(directory)
    id_of = dict(zip(store.paths, store.ids.tolist()))
    missing = [path for path in paths if path not in id_of]
    if missing:
        raise UserError(f"store {directory} holds no image {missing[0]}" + (
            f" (and {len(missing) - 1} more given)" if len(missing) > 1 else ""))
    manifest = dict(store.manifest, removed=sorted(set(store.manifest["removed"]) | {id_of[p] for p in paths}),
                    updated=_now())
    atomic_write_text(directory / MANIFEST_NAME, json.dumps(manifest))
    return FeatureStore.load(directory)


def _require_index_engine(manifest, directory, action):
    """A store whose shortlist index is FAISS's is rewritten only with faiss: one line says so."""
    if manifest.get("index") and not faiss_available():
        raise UserError(f"store {directory} keeps a FAISS shortlist index: install faiss-cpu to {action}")


def compact_feature_store(directory, chunk_size=4096, progress=True):
    """Rewrites the committed store in `directory` as one segment of its live images (one atomic commit).

    Removed images' rows leave the disk and the segments appends made become one; ids,
    paths, labels and order stay, and the shortlist index is rebuilt over the live
    embeddings. The codes are copied, not extracted again, so no model is needed and
    the features are bit for bit the same. Killed at any moment, the directory loads
    as the previous store; compacting again resumes the copy. A store of one segment
    with nothing removed is returned as it is.
    """
    directory = pathlib.Path(directory)
    store = FeatureStore.load(directory)
    committed = store.manifest
    if len(committed["segments"]) <= 1 and not committed["removed"]:
        return store
    _require_index_engine(committed, directory, "compact it")
    codecs = store.codecs
    identity = {
        "model_sha256": store.model_sha256,
        "image_size": list(store.image_size),
        "features": committed["features"],
        "count": store.count,
        "paths_sha256": _paths_sha256(store.paths),
        "compaction_of": [segment["data"] for segment in committed["segments"]],
        "merge_of": None,
    }
    partial = _resumed_or_new_partial(directory, identity)
    arrays = _fill_segment(directory, partial, codecs, _copier([store], chunk_size), chunk_size, progress,
                           "compacting")
    atomic_write_text(directory / partial["data"] / IMAGES_NAME, json.dumps(_images_of([store])))
    embeddings = _decoded_embeddings(arrays, codecs["embedding"])
    backend = (committed.get("index") or {}).get("backend", "numpy")
    index = _extended_index(directory, None, embeddings, backend) if store.count else None
    del arrays
    manifest = dict(committed, segments=[{"data": partial["data"], "count": store.count}], removed=[], index=index,
                    updated=_now())
    _commit(directory, manifest, committed, replaced_segments=True)
    return FeatureStore.load(directory)


def _write_segment(directory, items, extract, model_sha256, image_size, codecs, chunk_size, progress,
                   index_backend, append):
    """Extracts `items` into a new segment and commits it after (`append`) or instead of the store's."""
    if "embedding" not in codecs:
        raise ValueError("a feature store keeps an 'embedding' (its shortlist index is built on it)")
    for name in codecs:
        if not _FEATURE_NAME.match(name):
            raise ValueError(f"feature name {name!r} is not a valid file name (letters, digits, _)")
    directory.mkdir(parents=True, exist_ok=True)
    committed = _committed_manifest(directory)
    base = committed if append else None
    if base is not None:
        _require_index_engine(base, directory, "add images to it")  # before any extraction
    paths, pids, camids = _unpack(items)
    identity = {
        "model_sha256": str(model_sha256),
        "image_size": [int(v) for v in image_size],
        "features": {name: codec.to_json() for name, codec in codecs.items()},
        "count": len(paths),
        "paths_sha256": _paths_sha256(paths),
        "append_to": _last_segment(base),
        "compaction_of": None,
        "merge_of": None,
    }
    partial = _resumed_or_new_partial(directory, identity)
    arrays = _extract_into(directory, partial, items, extract, codecs, chunk_size, progress)
    first_id = _new_first_id() if base is None else base["next_id"]
    images = {"ids": list(range(first_id, first_id + len(paths))), "paths": paths, "pids": pids, "camids": camids}
    manifest = _manifest_with_segment(directory, base, identity, partial["data"], images, arrays, index_backend,
                                      next_id=first_id + len(paths))
    _commit(directory, manifest, committed, replaced_segments=base is None)
    return FeatureStore.load(directory)


def merge_feature_stores(directory, sources, chunk_size=4096, progress=True):
    """Copies the live images of the stores `sources` into the store in `directory` (one atomic commit).

    For shards extracted apart with one model (a store per camera, per day, per
    machine): the codes are copied, not extracted again, so no model is needed, and
    every image keeps its id, path and labels. `directory` may be missing or empty;
    the merged store is then created there, with the sources' model and codecs.
    Refused before anything is written: a source of another model, image size or
    codecs, an image id or path held twice (a shard merged twice), an id the
    destination has removed (ids are never reused: compact it first). Killed at any
    moment, the directory loads as it was; merging again resumes the copy.
    """
    directory = pathlib.Path(directory)
    _refuse_foreign_folder(directory)
    if not sources:
        raise UserError("give the stores to merge")
    stores = []
    for source in map(pathlib.Path, sources):
        if source.resolve() == directory.resolve():
            raise UserError(f"store {source} cannot be merged into itself")
        stores.append(FeatureStore.load(source))
    committed = _committed_manifest(directory)
    reference = committed or stores[0].manifest
    for source, store in zip(sources, stores):
        for key in ("model_sha256", "image_size", "features"):
            if store.manifest[key] != reference[key]:
                raise UserError(f"store {source} differs from {directory if committed else sources[0]} in its "
                                f"{key.replace('_', ' ')}: only stores of one model and codecs merge")
    _refuse_held_twice(directory, committed, sources, stores)
    _require_index_engine(reference, directory if committed else sources[0], "merge it")
    images = _images_of(stores)
    if not images["ids"]:
        raise UserError(f"the stores {', '.join(map(str, sources))} hold no images: nothing to merge")
    directory.mkdir(parents=True, exist_ok=True)
    identity = {
        "model_sha256": reference["model_sha256"],
        "image_size": reference["image_size"],
        "features": reference["features"],
        "count": len(images["ids"]),
        "paths_sha256": _paths_sha256(images["paths"]),
        "append_to": _last_segment(committed),
        "compaction_of": None,
        "merge_of": [str(pathlib.Path(source).resolve()) for source in sources],
    }
    partial = _resumed_or_new_partial(directory, identity)
    codecs = _codecs_of(reference)
    arrays = _fill_segment(directory, partial, codecs, _copier(stores, chunk_size), chunk_size, progress, "merging")
    backend = (reference.get("index") or {}).get("backend", "numpy")
    manifest = _manifest_with_segment(directory, committed, identity, partial["data"], images, arrays, backend,
                                      next_id=_new_first_id() if committed is None else committed["next_id"])
    _commit(directory, manifest, committed, replaced_segments=False)
    return FeatureStore.load(directory)


def _refuse_held_twice(directory, committed, sources, stores):
    """One line naming the first image id or path that two of the stores (or a removed id) would hold."""
    owner_of_id, owner_of_path = {}, {}
    if committed is not None:
        own = FeatureStore.load(directory)
        owner_of_id = dict.fromkeys(own.ids.tolist(), directory)
        owner_of_path = dict.fromkeys(own.paths, directory)
        removed = set(committed["removed"])
    else:
        removed = set()
    for source, store in zip(sources, stores):
        for image_id, path in zip(store.ids.tolist(), store.paths):
            if image_id in removed:
                raise UserError(f"image id {image_id} ({path}) of store {source} was removed from {directory}, and "
                                f"ids are never reused: compact {directory} first")
            if image_id in owner_of_id:
                raise UserError(f"image id {image_id} ({path}) of store {source} is also in store "
                                f"{owner_of_id[image_id]}: was it merged already? (Stores written before "
                                "keras_msreid numbered each store's ids apart all start at 0: extract one again.)")
            if path in owner_of_path:
                raise UserError(f"image {path} of store {source} is also in store {owner_of_path[path]}")
            owner_of_id[image_id] = owner_of_path[path] = source


def _manifest_with_segment(directory, base, identity, data, images, arrays, index_backend, next_id):
    """The manifest that commits the filled segment `data` after `base`'s segments (`base` None: a new store).

    Writes the segment's `images.json` and the extended shortlist index first.
    """
    atomic_write_text(directory / data / IMAGES_NAME, json.dumps(images))
    embeddings = _decoded_embeddings(arrays, _codecs_of(identity)["embedding"])
    index = _extended_index(directory, base, embeddings, index_backend)
    return {
        "format": FORMAT,
        "version": VERSION,
        "model_sha256": identity["model_sha256"],
        "image_size": identity["image_size"],
        "features": identity["features"],
        "segments": ([] if base is None else list(base["segments"])) + [{"data": data, "count": len(images["ids"])}],
        "removed": [] if base is None else base["removed"],
        "next_id": next_id,
        "index": index,
        "created": _now() if base is None else base["created"],
        "updated": _now(),
    }


def _images_of(stores):
    """The `images.json` record of the live images of `stores`, one after the other."""
    images = {"ids": [], "paths": [], "pids": [], "camids": []}
    for store in stores:
        images["ids"] += store.ids.tolist()
        images["paths"] += store.paths
        images["pids"] += store.pids.tolist()
        images["camids"] += store.camids.tolist()
    return images


def _new_first_id():
    """The first id of a new store: a random non-zero prefix, so that stores made apart number apart."""
    return (secrets.randbits(31) or 1) << ID_COUNTER_BITS


def _last_segment(base):
    """What a new segment goes after: None for a new store, "" for an empty one."""
    return None if base is None else base["segments"][-1]["data"] if base["segments"] else ""


def _copier(stores, chunk_size):
    """`batches(written)` for `_fill_segment`: the live rows' codes of `stores` one after the other."""

    def copied(written):
        offset = 0
        for store in stores:
            for start in range(max(written - offset, 0), store.count, chunk_size):
                rows = np.arange(start, min(start + chunk_size, store.count))
                yield len(rows), {(name, array_name): codes for name, feature in store.features.items()
                                  for array_name, codes in feature.codes(rows).items()}
            offset += store.count

    return copied


def _commit(directory, manifest, committed, replaced_segments):
    """Replaces the manifest (the commit), then drops what only the `committed` one named:
    its index file if the new manifest has another, its segments if `replaced_segments`."""
    atomic_write_text(directory / MANIFEST_NAME, json.dumps(manifest))
    (directory / PARTIAL_NAME).unlink(missing_ok=True)
    if committed is None:
        return
    if committed.get("index") and committed["index"] != manifest["index"]:
        (directory / committed["index"]["file"]).unlink(missing_ok=True)
    if replaced_segments:
        for segment in committed["segments"]:
            _remove_data_folder(directory, segment, _codecs_of(committed))


def _paths_sha256(paths):
    return hashlib.sha256("\n".join(paths).encode()).hexdigest()


def _decoded_embeddings(arrays, codec):
    """The float embeddings of a segment's freshly written `arrays` (keys `("embedding", array name)`)."""
    return np.asarray(EncodedFeature(codec, {name: arrays["embedding", name] for name in codec.array_specs()}))


def _resumed_or_new_partial(directory, identity):
    """The partial-extraction record to continue: a killed run's for the same `identity`, or a new one."""
    partial = _read_json(directory / PARTIAL_NAME)
    resumable = (
        partial is not None
        and all(partial.get(key) == value for key, value in identity.items())
        and (directory / partial["data"]).is_dir()
    )
    if not resumable:
        if partial is not None:
            _remove_data_folder(directory, partial, _codecs_of(partial))  # an abandoned extraction: ours to drop
        partial = dict(identity, data=_new_name(directory, "data-"), done=0)
        # Recorded before it exists, so that whatever a kill leaves behind is known to be ours.
        atomic_write_text(directory / PARTIAL_NAME, json.dumps(partial))
    return partial


def _extract_into(directory, partial, items, extract, codecs, chunk_size, progress):
    """Extracts the images `partial` has not done yet into its data folder's arrays; returns the arrays."""

    def encoded(written):
        for batch in (extract(items[written:]) if written < partial["count"] else ()):
            yield _batch_size(batch, codecs), {(name, array_name): value for name, codec in codecs.items()
                                               for array_name, value in codec.encode(batch[name]).items()}

    return _fill_segment(directory, partial, codecs, encoded, chunk_size, progress, "extracting features")


def _fill_segment(directory, partial, codecs, batches, chunk_size, progress, label):
    """Writes `batches(rows already written)` (`(size, {(feature, array name): codes})` in order)
    into `partial`'s data folder; returns the arrays.

    Every `chunk_size` rows the arrays are flushed and `partial["done"]` recorded, so a
    killed run resumes from the last record.
    """
    count = partial["count"]
    data_dir = directory / partial["data"]
    data_dir.mkdir(exist_ok=True)
    mode = "r+" if partial["done"] else "w+"  # dtype and shape only shape a new file
    arrays = {
        (name, array_name): np.lib.format.open_memmap(data_dir / f"{name}.{array_name}.npy", mode=mode, dtype=dtype,
                                                       shape=(count, *shape))
        for name, codec in codecs.items() for array_name, (shape, dtype) in codec.array_specs().items()
    }
    meter = Progress(count, label, enabled=progress)
    meter.done = written = partial["done"]
    for size, codes in batches(written):
        if written + size > count:
            raise ValueError(f"the extractor gave more than the {count} images asked for")
        for key, value in codes.items():
            arrays[key][written : written + size] = value
        written += size
        meter.update(size)
        if written - partial["done"] >= chunk_size or written == count:
            for array in arrays.values():
                array.flush()
            partial["done"] = written
            atomic_write_text(directory / PARTIAL_NAME, json.dumps(partial))
    meter.close()
    if written != count:
        raise ValueError(f"the extractor stopped after {written} of the {count} images asked for")
    return arrays


def _extended_index(directory, base, embeddings, backend):
    """The manifest's `index` record after adding `embeddings`: a new saved FAISS index, or None (numpy)."""
    if base is not None and base.get("index"):
        index = EmbeddingIndex.from_bytes((directory / base["index"]["file"]).read_bytes())
        index.add(embeddings)
    elif base is not None and base["segments"]:
        return None  # a store without a saved index (numpy) stays without one
    else:
        index = EmbeddingIndex(embeddings, backend=backend)
        if index.backend == "numpy":
            return None
    name = _new_name(directory, "index-") + ".faiss"
    atomic_write_bytes(directory / name, index.to_bytes())
    return {"file": name, "backend": index.backend}


def _codecs_of(record):
    return {name: FeatureCodec.from_json(spec) for name, spec in (record.get("features") or {}).items()}


def _check_version(directory, manifest):
    if manifest.get("format") != FORMAT:
        raise UserError(f"{directory / MANIFEST_NAME} is not a {FORMAT} manifest (format {manifest.get('format')!r})")
    if manifest.get("version") != VERSION:
        raise UserError(
            f"{directory} is a version-{manifest.get('version')} feature store; this keras_msreid reads version "
            f"{VERSION} (compact, appendable): extract the gallery again into a new folder "
            "(msreid search --store NEW_FOLDER with --gallery or --dataset), then delete the old one"
        )


def _committed_manifest(directory):
    manifest = _read_json(directory / MANIFEST_NAME)
    if manifest is not None:
        _check_version(directory, manifest)
    return manifest


def _same_features(manifest, model_sha256, image_size, codecs):
    return (manifest["model_sha256"] == str(model_sha256)
            and manifest["image_size"] == [int(v) for v in image_size]
            and manifest["features"] == {name: codec.to_json() for name, codec in codecs.items()})


def _load_segment(directory, segment, codecs, mmap):
    """`({name: {array name: array}}, images)` of one segment, checked against the manifest."""
    folder = directory / segment["data"]
    images = _read_json(folder / IMAGES_NAME)
    if images is None or len(images["ids"]) != segment["count"]:
        raise UserError(f"feature store segment {folder} lacks its {IMAGES_NAME} or disagrees with the manifest")
    arrays = {}
    for name, codec in codecs.items():
        arrays[name] = {}
        for array_name, (shape, dtype) in codec.array_specs().items():
            path = folder / f"{name}.{array_name}.npy"
            try:
                array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
            except (OSError, ValueError) as error:
                raise UserError(f"feature file {path} cannot be read: {error}") from error
            expected = (segment["count"], *shape)
            if array.shape != expected or array.dtype != dtype:
                raise UserError(f"feature file {path} holds {array.dtype}{list(array.shape)}, "
                                f"the manifest says {dtype}{list(expected)}")
            arrays[name][array_name] = array
    return arrays, images


def _refuse_foreign_folder(directory):
    """A store is written only into a missing or empty folder, or one that already holds a store."""
    if directory.exists() and not directory.is_dir():
        raise UserError(f"--store {directory} is a file, not a feature store folder")
    if not directory.is_dir() or (directory / MANIFEST_NAME).exists() or (directory / PARTIAL_NAME).exists():
        return
    if any(directory.iterdir()):
        raise UserError(f"--store {directory} is not empty and holds no feature store ({MANIFEST_NAME}): "
                        "give a new or empty folder")


def _new_name(directory, prefix):
    while True:
        name = f"{prefix}{uuid.uuid4().hex[:12]}"
        if not any(directory.glob(name + "*")):
            return name


def _remove_data_folder(directory, record, codecs):
    """Removes the files that `record` (a segment or partial record) says this store wrote, then their folder."""
    folder = directory / record["data"]
    for name, codec in codecs.items():
        for array_name in codec.array_specs():
            (folder / f"{name}.{array_name}.npy").unlink(missing_ok=True)
    (folder / IMAGES_NAME).unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not empty: something else lives there, and stays
        folder.rmdir()


def _unique_items(records_or_paths):
    items = list(records_or_paths)
    paths = [str(getattr(item, "path", item)) for item in items]
    if len(set(paths)) != len(paths):
        seen = set()
        twice = next(path for path in paths if path in seen or seen.add(path))
        raise UserError(f"image {twice} is given twice")
    return items, paths


def _unpack(items):
    paths, pids, camids = [], [], []
    for item in items:
        paths.append(str(getattr(item, "path", item)))
        pids.append(int(getattr(item, "pid", -1)))
        camids.append(int(getattr(item, "camid", -1)))
    if not paths:
        raise ValueError("a feature store segment needs at least one image")
    return paths, pids, camids


def _batch_size(batch, codecs):
    missing = set(codecs) - set(batch)
    if missing:
        raise ValueError(f"a batch lacks the features {sorted(missing)} the store keeps")
    sizes = {len(batch[name]) for name in codecs}
    if len(sizes) != 1:
        raise ValueError(f"the features of one batch differ in length: {sorted(sizes)}")
    for name, codec in codecs.items():
        if tuple(np.shape(batch[name])[1:]) != codec.shape:
            raise ValueError(f"feature {name!r} has per-image shape {list(np.shape(batch[name])[1:])}, "
                             f"the store {list(codec.shape)}")
    return sizes.pop()


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _read_json(path):
    try:
        return json.loads(pathlib.Path(path).read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as error:
        raise UserError(f"{path} is not valid JSON: {error}") from error
