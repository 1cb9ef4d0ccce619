"""FeatureStore: compact round trip, memory-mapped reload, append, removal, the saved index, crash safety."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from keras_msreid.datasets import ImageRecord
from keras_msreid.retrieval.encoding import FeatureCodec
from keras_msreid.retrieval.feature_store import (
    MANIFEST_NAME,
    PARTIAL_NAME,
    FeatureStore,
    add_to_feature_store,
    ID_COUNTER_BITS,
    compact_feature_store,
    merge_feature_stores,
    remove_from_feature_store,
    write_feature_store,
)
from keras_msreid.retrieval.shortlist import faiss_available
from keras_msreid.utils.file_hash import sha256_of_file

COUNT = 20
RECORDS = [ImageRecord(f"/images/{i:03d}.jpg", pid=i // 4, camid=i % 2) for i in range(COUNT + 10)]
CODECS = {"embedding": FeatureCodec("float32", (8,)), "low_map": FeatureCodec("float32", (4, 2, 3))}


def features_of(index, seed=0):
    """Deterministic features of image `index` (so a resumed run can be checked row by row)."""
    rng = np.random.default_rng([seed, index])
    embedding = rng.normal(size=8).astype(np.float32)
    return {"embedding": embedding / np.linalg.norm(embedding), "low_map": rng.normal(size=(4, 2, 3)).astype(np.float32)}


def make_extract(batch_size=3, seed=0, fail_after=None, asked=None):
    """`extract(items)` for a store; raises after `fail_after` batches (a simulated kill)."""

    def extract(items):
        if asked is not None:
            asked.append([item.path for item in items])
        indices = [RECORDS.index(item) for item in items]
        for number, first in enumerate(range(0, len(indices), batch_size)):
            if fail_after is not None and number == fail_after:
                raise KeyboardInterrupt("killed")
            rows = [features_of(i, seed) for i in indices[first : first + batch_size]]
            yield {name: np.stack([row[name] for row in rows]) for name in rows[0]}

    return extract


def expected(seed=0, indices=range(COUNT)):
    rows = [features_of(i, seed) for i in indices]
    return {name: np.stack([row[name] for row in rows]) for name in rows[0]}


def write(directory, extract, sha="a" * 64, chunk_size=4, records=RECORDS[:COUNT], codecs=CODECS):
    return write_feature_store(directory, records, extract, model_sha256=sha, image_size=(160, 64), codecs=codecs,
                               chunk_size=chunk_size, progress=False)


def test_round_trip_memory_mapped(tmp_path):
    write(tmp_path / "store", make_extract())
    store = FeatureStore.load(tmp_path / "store")
    for name, value in expected().items():
        np.testing.assert_array_equal(store.features[name], value)
        assert isinstance(store.features[name].arrays["codes"], np.memmap)
    assert store.paths == [record.path for record in RECORDS[:COUNT]]
    first = store.ids[0]  # a random prefix of its own, numbered from 0 under it
    assert first > 0 and first % 2**ID_COUNTER_BITS == 0
    np.testing.assert_array_equal(store.ids, first + np.arange(COUNT))
    np.testing.assert_array_equal(store.pids, [record.pid for record in RECORDS[:COUNT]])
    np.testing.assert_array_equal(store.camids, [record.camid for record in RECORDS[:COUNT]])
    assert (store.count, store.model_sha256, store.image_size) == (COUNT, "a" * 64, (160, 64))
    manifest = json.loads((tmp_path / "store" / MANIFEST_NAME).read_text())
    assert manifest["features"]["low_map"] == {"encoding": "float32", "shape": [4, 2, 3]}
    assert manifest["format"] == "keras_msreid.feature_store" and manifest["version"] == 2
    assert not (tmp_path / "store" / PARTIAL_NAME).exists()
    in_memory = FeatureStore.load(tmp_path / "store", mmap=False)
    assert not isinstance(in_memory.features["embedding"].arrays["codes"], np.memmap)


def test_same_extraction_is_reused_without_running(tmp_path):
    write(tmp_path / "store", make_extract())
    asked = []
    write(tmp_path / "store", make_extract(asked=asked))
    assert asked == []


def test_killed_extraction_leaves_the_old_store_and_resumes(tmp_path):
    directory = tmp_path / "store"
    write(directory, make_extract(seed=0), sha="a" * 64)
    with pytest.raises(KeyboardInterrupt):  # new model, killed after 3 batches of 3: recorded at 6 images
        write(directory, make_extract(seed=1, fail_after=3), sha="b" * 64)
    old = FeatureStore.load(directory)
    assert old.model_sha256 == "a" * 64
    np.testing.assert_array_equal(old.features["embedding"], expected(seed=0)["embedding"])
    assert json.loads((directory / PARTIAL_NAME).read_text())["done"] == 6

    asked = []
    new = write(directory, make_extract(seed=1, asked=asked), sha="b" * 64)
    assert asked == [[record.path for record in RECORDS[6:COUNT]]]
    assert new.model_sha256 == "b" * 64
    for name, value in expected(seed=1).items():
        np.testing.assert_array_equal(new.features[name], value)
    assert len(list(directory.glob("data-*"))) == 1  # the old model's arrays are gone


KILLED_WRITER = """
import os, signal, sys
import numpy as np
sys.path.insert(0, {tests!r})
import test_feature_store as t
from keras_msreid.retrieval.feature_store import add_to_feature_store, write_feature_store

def extract(items):
    for number, batch in enumerate(t.make_extract(batch_size=2)(items)):
        if number == {kill_at!r}:
            os.kill(os.getpid(), signal.SIGKILL)
        yield batch

if {append!r}:
    add_to_feature_store({directory!r}, t.RECORDS[t.COUNT:], extract, chunk_size=4, progress=False)
else:
    write_feature_store({directory!r}, t.RECORDS[:t.COUNT], extract, model_sha256="c" * 64, image_size=(160, 64),
                        codecs=t.CODECS, chunk_size=4, progress=False)
"""


def run_killed_writer(directory, append):
    code = KILLED_WRITER.format(tests=str(pathlib.Path(__file__).parent), directory=str(directory), append=append,
                                kill_at=4 if append else 5)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == -9, result.stderr


def test_sigkill_between_chunks_never_loads_as_complete(tmp_path):
    directory = tmp_path / "store"
    run_killed_writer(directory, append=False)
    with pytest.raises(FileNotFoundError, match=r"unfinished extraction \(8/20 images\).*resume"):
        FeatureStore.load(directory)
    asked = []
    store = write(directory, make_extract(batch_size=2, asked=asked), sha="c" * 64)
    assert asked == [[record.path for record in RECORDS[8:COUNT]]]
    for name, value in expected().items():
        np.testing.assert_array_equal(store.features[name], value)


def test_corrupt_or_missing_stores_are_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"no feature store in {tmp_path} \\(no manifest.json\\)"):
        FeatureStore.load(tmp_path)
    store = write(tmp_path / "store", make_extract())
    path = store.directory / store.manifest["segments"][0]["data"] / "low_map.codes.npy"
    del store
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=f"feature file {path} cannot be read"):
        FeatureStore.load(tmp_path / "store")
    manifest = json.loads((tmp_path / "store" / MANIFEST_NAME).read_text())
    manifest["version"] = 1  # a store of an earlier keras_msreid
    (tmp_path / "store" / MANIFEST_NAME).write_text(json.dumps(manifest))
    message = r"is a version-1 feature store; this keras_msreid reads version 2 .*extract the gallery again"
    with pytest.raises(ValueError, match=message):
        FeatureStore.load(tmp_path / "store")
    with pytest.raises(ValueError, match=message):  # and it is not written over
        write(tmp_path / "store", make_extract(), sha="b" * 64)


def test_batches_that_do_not_fit_the_images_are_an_error(tmp_path):
    codecs = {"embedding": CODECS["embedding"]}

    def too_few(items):
        yield {"embedding": np.zeros((3, 8), np.float32)}

    with pytest.raises(ValueError, match="the extractor stopped after 3 of the 20 images"):
        write(tmp_path / "a", too_few, codecs=codecs)

    def changing(items):
        yield {"embedding": np.zeros((3, 8), np.float32)}
        yield {"embedding": np.zeros((3, 9), np.float32)}

    with pytest.raises(ValueError, match=r"feature 'embedding' has per-image shape \[9\], the store \[8\]"):
        write(tmp_path / "b", changing, codecs=codecs)
    with pytest.raises(ValueError, match="lacks the features \['low_map'\]"):
        write(tmp_path / "c", too_few)
    with pytest.raises(ValueError, match="image /images/000.jpg is given twice"):
        write(tmp_path / "d", too_few, records=RECORDS[:2] + RECORDS[:1])


def test_sha256_of_file(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"abc")
    assert sha256_of_file(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_a_store_never_removes_folders_it_did_not_write(tmp_path):
    store_dir = tmp_path / "store"
    write(store_dir, make_extract())
    # A user's folder that happens to match the data-* pattern, and a file of theirs.
    (store_dir / "data-holiday-photos").mkdir()
    (store_dir / "data-holiday-photos" / "beach.jpg").write_bytes(b"mine")
    (store_dir / "notes.txt").write_text("mine")
    write(store_dir, make_extract(seed=1), sha="b" * 64)  # another model: a fresh extraction
    write(store_dir, make_extract(seed=2), sha="c" * 64, chunk_size=4)
    assert (store_dir / "data-holiday-photos" / "beach.jpg").read_bytes() == b"mine"
    assert (store_dir / "notes.txt").read_text() == "mine"
    # The superseded extractions are gone: only the committed data folder is left of ours.
    committed = [segment["data"] for segment in json.loads((store_dir / MANIFEST_NAME).read_text())["segments"]]
    ours = sorted(path.name for path in store_dir.glob("data-*") if path.name != "data-holiday-photos")
    assert ours == committed
    np.testing.assert_array_equal(FeatureStore.load(store_dir).features["embedding"], expected(seed=2)["embedding"])


def test_an_abandoned_extraction_is_removed_file_by_file(tmp_path):
    store_dir = tmp_path / "store"
    with pytest.raises(KeyboardInterrupt):
        write(store_dir, make_extract(fail_after=2))
    abandoned = json.loads((store_dir / PARTIAL_NAME).read_text())["data"]
    (store_dir / abandoned / "keep.txt").write_text("someone else's")
    write(store_dir, make_extract(seed=1), sha="b" * 64)  # another model: the partial cannot resume
    assert not (store_dir / abandoned / "embedding.codes.npy").exists()
    assert (store_dir / abandoned / "keep.txt").read_text() == "someone else's"


@pytest.mark.parametrize("content", ["file", "folder"])
def test_a_folder_that_is_not_a_store_is_refused(tmp_path, content):
    store_dir = tmp_path / "photos"
    store_dir.mkdir()
    if content == "file":
        (store_dir / "me.jpg").write_bytes(b"mine")
    else:
        (store_dir / "data-2024").mkdir()
    before = sorted(os.listdir(store_dir))
    with pytest.raises(ValueError, match=r"photos is not empty and holds no feature store \(manifest.json\)"):
        write(store_dir, make_extract())
    assert sorted(os.listdir(store_dir)) == before
    (tmp_path / "a_file").write_text("mine")
    with pytest.raises(ValueError, match="a_file is a file, not a feature store folder"):
        write(tmp_path / "a_file", make_extract())
    assert (tmp_path / "a_file").read_text() == "mine"


def test_append_extracts_only_the_new_images_and_keeps_ids(tmp_path):
    directory = tmp_path / "store"
    first = write(directory, make_extract()).ids[0]
    asked = []
    store = add_to_feature_store(directory, RECORDS[COUNT:], make_extract(asked=asked), progress=False)
    assert asked == [[record.path for record in RECORDS[COUNT:]]]
    assert store.paths == [record.path for record in RECORDS]
    np.testing.assert_array_equal(store.ids, first + np.arange(len(RECORDS)))
    for name, value in expected(indices=range(len(RECORDS))).items():
        np.testing.assert_array_equal(store.features[name], value)
    with pytest.raises(ValueError, match="already holds 1 of these images, e.g. /images/003.jpg"):
        add_to_feature_store(directory, RECORDS[3:4], make_extract(), progress=False)


def test_removed_images_are_skipped_and_their_ids_never_come_back(tmp_path):
    directory = tmp_path / "store"
    first = write(directory, make_extract()).ids[0]
    gone = [RECORDS[2].path, RECORDS[5].path]
    store = remove_from_feature_store(directory, gone)
    kept = [i for i in range(COUNT) if i not in (2, 5)]
    assert store.paths == [RECORDS[i].path for i in kept]
    np.testing.assert_array_equal(store.ids, first + np.array(kept))
    np.testing.assert_array_equal(store.features["low_map"], expected(indices=kept)["low_map"])
    store = add_to_feature_store(directory, RECORDS[COUNT:], make_extract(), progress=False)
    np.testing.assert_array_equal(store.ids, first + np.array(kept + list(range(COUNT, len(RECORDS)))))
    with pytest.raises(ValueError, match="holds no image /images/002.jpg \\(and 2 more given\\)"):
        remove_from_feature_store(directory, gone + ["/images/x.jpg"])
    assert FeatureStore.load(directory).count == len(RECORDS) - 2


@pytest.mark.parametrize("backend", ["numpy"] + (["faiss-flat", "faiss-hnsw"] if faiss_available() else []))
def test_the_saved_index_is_extended_on_append_and_skips_removed_images(tmp_path, backend):
    directory = tmp_path / "store"
    write_feature_store(directory, RECORDS[:COUNT], make_extract(), model_sha256="a" * 64, image_size=(160, 64),
                        codecs=CODECS, progress=False, index_backend=backend)
    manifest = json.loads((directory / MANIFEST_NAME).read_text())
    assert (manifest["index"] or {}).get("backend", "numpy") == backend
    add_to_feature_store(directory, RECORDS[COUNT:], make_extract(), progress=False)
    store = remove_from_feature_store(directory, [RECORDS[i].path for i in (0, 21)])
    index = store.index()
    assert index.size == store.count == len(RECORDS) - 2
    queries = expected(indices=range(len(RECORDS)))["embedding"]
    _, rows = index.search(queries, k=5)
    exact = np.asarray(store.features["embedding"]) @ queries.T
    np.testing.assert_array_equal(rows, np.argsort(-exact.T, axis=1, kind="stable")[:, :5])
    if backend != "numpy":
        assert len(list(directory.glob("index-*"))) == 1  # the superseded index file is gone


def test_sigkill_during_an_append_keeps_the_previous_store_and_resumes(tmp_path):
    directory = tmp_path / "store"
    write(directory, make_extract())
    run_killed_writer(directory, append=True)  # killed at the 5th batch of 2 of the 10 new images: 8 recorded
    store = FeatureStore.load(directory)
    assert store.count == COUNT
    np.testing.assert_array_equal(store.features["embedding"], expected()["embedding"])
    asked = []
    store = add_to_feature_store(directory, RECORDS[COUNT:], make_extract(batch_size=2, asked=asked), progress=False)
    assert asked == [[record.path for record in RECORDS[COUNT + 8 :]]]
    for name, value in expected(indices=range(len(RECORDS))).items():
        np.testing.assert_array_equal(store.features[name], value)


COMPACT_CODECS = {"embedding": FeatureCodec("float16", (8,)), "low_map": FeatureCodec("float16", (4, 2, 3))}


def grown_store(directory, backend="numpy"):
    """A store of three segments (a write and two appends) with images removed from two of them."""
    write_feature_store(directory, RECORDS[:12], make_extract(), model_sha256="a" * 64, image_size=(160, 64),
                        codecs=COMPACT_CODECS, progress=False, index_backend=backend)
    add_to_feature_store(directory, RECORDS[12:20], make_extract(), progress=False)
    add_to_feature_store(directory, RECORDS[20:], make_extract(), progress=False)
    return remove_from_feature_store(directory, [RECORDS[i].path for i in (0, 5, 13, 29)])


@pytest.mark.parametrize("backend", ["numpy"] + (["faiss-flat"] if faiss_available() else []))
def test_compaction_copies_the_live_rows_into_one_segment(tmp_path, backend):
    directory = tmp_path / "store"
    before = grown_store(directory, backend)
    codes = {name: feature.arrays for name, feature in before.features.items()}
    old_folders = [segment["data"] for segment in before.manifest["segments"]]
    store = compact_feature_store(directory, chunk_size=5, progress=False)
    assert len(store.manifest["segments"]) == 1 and store.manifest["removed"] == []
    assert store.paths == before.paths and store.ids.tolist() == before.ids.tolist()
    assert store.pids.tolist() == before.pids.tolist() and store.camids.tolist() == before.camids.tolist()
    for name, feature in store.features.items():  # the codes themselves, bit for bit
        for array_name, value in feature.arrays.items():
            np.testing.assert_array_equal(value, codes[name][array_name])
    assert not any((directory / folder).exists() for folder in old_folders)
    assert not (directory / PARTIAL_NAME).exists() and len(list(directory.glob("data-*"))) == 1
    assert len(list(directory.glob("index-*"))) == (backend != "numpy")
    queries = expected(indices=range(len(RECORDS)))["embedding"]
    _, rows = store.index().search(queries, k=5)
    exact = np.asarray(store.features["embedding"]) @ queries.T
    np.testing.assert_array_equal(rows, np.argsort(-exact.T, axis=1, kind="stable")[:, :5])
    # Ids of removed images still never come back.
    store = add_to_feature_store(directory, [RECORDS[0]], make_extract(), progress=False)
    assert store.ids[-1] == before.manifest["next_id"] == before.ids[0] - 1 + len(RECORDS)


def test_a_store_with_nothing_to_compact_is_left_as_it_is(tmp_path):
    directory = tmp_path / "store"
    write(directory, make_extract())
    manifest = (directory / MANIFEST_NAME).read_bytes()
    store = compact_feature_store(directory, progress=False)
    assert (directory / MANIFEST_NAME).read_bytes() == manifest and store.count == COUNT


def test_every_image_removed_compacts_to_an_empty_store(tmp_path):
    directory = tmp_path / "store"
    first = write(directory, make_extract()).ids[0]
    remove_from_feature_store(directory, [record.path for record in RECORDS[:COUNT]])
    store = compact_feature_store(directory, progress=False)
    assert store.count == 0 and store.features["embedding"].shape == (0, 8)
    store = add_to_feature_store(directory, RECORDS[:2], make_extract(), progress=False)
    assert store.ids.tolist() == [first + COUNT, first + COUNT + 1]


KILLED_COPY = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from keras_msreid.retrieval.encoding import EncodedFeature
from keras_msreid.retrieval.feature_store import compact_feature_store, merge_feature_stores

codes, calls = EncodedFeature.codes, []

def killed_at_the_third_chunk(self, indices):
    calls.append(1)
    if len(calls) == 5:  # two features a chunk: the third chunk's second feature
        os.kill(os.getpid(), signal.SIGKILL)
    return codes(self, indices)

EncodedFeature.codes = killed_at_the_third_chunk
{call}
"""


def run_killed_copy(call):
    """Runs `call` (a compaction or a merge) in a child killed by SIGKILL while copying its third chunk."""
    code = KILLED_COPY.format(tests=str(pathlib.Path(__file__).parent), call=call)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == -9, result.stderr


def test_a_killed_compaction_keeps_the_previous_store_and_resumes(tmp_path):
    directory = tmp_path / "store"
    before = grown_store(directory)
    run_killed_copy(f"compact_feature_store({str(directory)!r}, chunk_size=4, progress=False)")
    store = FeatureStore.load(directory)
    assert store.manifest == before.manifest and store.paths == before.paths
    assert json.loads((directory / PARTIAL_NAME).read_text())["done"] == 8
    store = compact_feature_store(directory, chunk_size=4, progress=False)
    assert len(store.manifest["segments"]) == 1 and store.paths == before.paths
    for name, feature in store.features.items():
        np.testing.assert_array_equal(np.asarray(feature), np.asarray(before.features[name]))
    assert len(list(directory.glob("data-*"))) == 1


def shards(tmp_path, backend="numpy"):
    """Three stores extracted apart with one model: images 0-11 (one removed), 12-19, 20-29."""
    made = []
    for number, (start, stop) in enumerate([(0, 12), (12, 20), (20, len(RECORDS))]):
        directory = tmp_path / f"shard{number}"
        write_feature_store(directory, RECORDS[start:stop], make_extract(), model_sha256="a" * 64,
                            image_size=(160, 64), codecs=COMPACT_CODECS, progress=False, index_backend=backend)
        made.append(directory)
    remove_from_feature_store(made[0], [RECORDS[3].path])
    return made


def test_stores_made_apart_number_their_images_apart(tmp_path):
    made = [write(tmp_path / name, make_extract()) for name in ("a", "b")]
    assert not set(made[0].ids.tolist()) & set(made[1].ids.tolist())
    assert made[0].ids[0] >> ID_COUNTER_BITS != made[1].ids[0] >> ID_COUNTER_BITS


@pytest.mark.parametrize("backend", ["numpy"] + (["faiss-flat"] if faiss_available() else []))
def test_merging_shards_copies_their_live_images_with_their_ids(tmp_path, backend):
    made = shards(tmp_path, backend)
    before = [FeatureStore.load(directory) for directory in made]
    merged = merge_feature_stores(tmp_path / "all", made, chunk_size=5, progress=False)
    assert merged.paths == [path for store in before for path in store.paths]
    for key in ("ids", "pids", "camids"):
        assert getattr(merged, key).tolist() == [value for store in before for value in getattr(store, key).tolist()]
    for name, feature in merged.features.items():  # the codes, bit for bit
        for array_name, value in feature.arrays.items():
            np.testing.assert_array_equal(
                value, np.concatenate([np.asarray(store.features[name].codes(np.arange(store.count))[array_name])
                                       for store in before]))
    assert merged.manifest["model_sha256"] == "a" * 64 and len(merged.manifest["segments"]) == 1
    queries = expected(indices=range(len(RECORDS)))["embedding"]
    _, rows = merged.index().search(queries, k=5)
    exact = np.asarray(merged.features["embedding"]) @ queries.T
    np.testing.assert_array_equal(rows, np.argsort(-exact.T, axis=1, kind="stable")[:, :5])
    # The merged store numbers what it extracts itself under a prefix of its own.
    extra = ImageRecord("/images/extra.jpg", pid=99, camid=1)
    RECORDS.append(extra)
    try:
        grown = add_to_feature_store(tmp_path / "all", [extra], make_extract(), progress=False)
    finally:
        RECORDS.remove(extra)
    assert grown.ids[-1] == merged.manifest["next_id"] and grown.ids[-1] not in merged.ids
    # Into an existing store: the first shard takes in the other two.
    merged_in = merge_feature_stores(made[0], made[1:], progress=False)
    assert merged_in.ids.tolist() == merged.ids.tolist() and len(merged_in.manifest["segments"]) == 2
    assert merged_in.manifest["next_id"] == before[0].manifest["next_id"]


def test_a_merge_is_refused_before_anything_is_written(tmp_path):
    made = shards(tmp_path)
    merge_feature_stores(tmp_path / "all", made[:2], progress=False)
    snapshot = {path: path.read_bytes() for path in (tmp_path / "all").rglob("*") if path.is_file()}
    with pytest.raises(ValueError, match=r"image id \d+ \(/images/012.jpg\) of store .*shard1 is also in store .*all: "
                                         "was it merged already"):
        merge_feature_stores(tmp_path / "all", made[1:], progress=False)
    other_model = write(tmp_path / "other", make_extract(), sha="b" * 64, records=RECORDS[20:], codecs=COMPACT_CODECS)
    with pytest.raises(ValueError, match=r"store .*other differs from .*all in its model sha256"):
        merge_feature_stores(tmp_path / "all", [other_model.directory], progress=False)
    other_codecs = write(tmp_path / "codecs", make_extract(), records=RECORDS[20:])
    with pytest.raises(ValueError, match="differs from .* in its features"):
        merge_feature_stores(tmp_path / "all", [other_codecs.directory], progress=False)
    same_paths = write(tmp_path / "again", make_extract(), records=RECORDS[:2], codecs=COMPACT_CODECS)
    with pytest.raises(ValueError, match=r"image /images/000.jpg of store .*again is also in store .*all"):
        merge_feature_stores(tmp_path / "all", [same_paths.directory], progress=False)
    with pytest.raises(ValueError, match="cannot be merged into itself"):
        merge_feature_stores(tmp_path / "all", [tmp_path / "all"], progress=False)
    remove_from_feature_store(made[2], [record.path for record in RECORDS[20:]])
    with pytest.raises(ValueError, match="hold no images: nothing to merge"):
        merge_feature_stores(tmp_path / "all", [made[2]], progress=False)
    with pytest.raises(FileNotFoundError, match="no feature store in"):
        merge_feature_stores(tmp_path / "all", [tmp_path / "missing"], progress=False)
    assert {path: path.read_bytes() for path in (tmp_path / "all").rglob("*") if path.is_file()} == snapshot


def test_an_id_the_destination_removed_is_not_merged_back_until_it_is_compacted(tmp_path):
    made = shards(tmp_path)
    merge_feature_stores(tmp_path / "all", made[1:2], progress=False)
    remove_from_feature_store(tmp_path / "all", [RECORDS[12].path])
    with pytest.raises(ValueError, match=r"of store .*shard1 was removed from .*all, and ids are never reused: "
                                         "compact .*all first"):
        merge_feature_stores(tmp_path / "all", made[1:2], progress=False)
    remove_from_feature_store(tmp_path / "all", [RECORDS[i].path for i in range(13, 20)])
    compact_feature_store(tmp_path / "all", progress=False)
    merged = merge_feature_stores(tmp_path / "all", made[1:2], progress=False)
    assert merged.ids.tolist() == FeatureStore.load(made[1]).ids.tolist()


def test_a_killed_merge_keeps_the_previous_store_and_resumes(tmp_path):
    made = shards(tmp_path)
    before = FeatureStore.load(made[0])
    fresh = merge_feature_stores(tmp_path / "fresh", made, progress=False)  # what the resumed merge must give
    run_killed_copy(f"merge_feature_stores({str(made[0])!r}, {[str(d) for d in made[1:]]!r}, chunk_size=4, "
                    "progress=False)")
    store = FeatureStore.load(made[0])
    assert store.manifest == before.manifest and store.paths == before.paths
    assert json.loads((made[0] / PARTIAL_NAME).read_text())["done"] == 8
    merged = merge_feature_stores(made[0], made[1:], chunk_size=4, progress=False)
    assert merged.paths == fresh.paths and merged.ids.tolist() == fresh.ids.tolist()
    for name, feature in merged.features.items():
        np.testing.assert_array_equal(np.asarray(feature), np.asarray(fresh.features[name]))
    assert len(list(made[0].glob("data-*"))) == 2 and not (made[0] / PARTIAL_NAME).exists()


def test_writing_the_same_model_again_syncs_the_store_to_the_images_given(tmp_path):
    directory = tmp_path / "store"
    write(directory, make_extract())
    asked = []
    records = RECORDS[3:]  # three images gone, ten new
    store = write(directory, make_extract(asked=asked), records=records)
    assert asked == [[record.path for record in RECORDS[COUNT:]]]
    assert sorted(store.paths) == sorted(record.path for record in records)
    np.testing.assert_array_equal(store.features["embedding"], expected(indices=range(3, len(RECORDS)))["embedding"])
    # Other encodings: everything is extracted again, into one segment.
    compact = dict(CODECS, embedding=FeatureCodec("float16", (8,)))
    store = write(directory, make_extract(), records=records, codecs=compact)
    assert len(store.manifest["segments"]) == 1 and store.bytes_per_image == 8 * 2 + 24 * 4


@pytest.mark.skipif(not faiss_available(), reason="needs faiss to write a FAISS index")
def test_a_faiss_store_reads_without_faiss_and_says_what_appending_needs(tmp_path, monkeypatch):
    import keras_msreid.retrieval.feature_store as feature_store

    directory = tmp_path / "store"
    write_feature_store(directory, RECORDS[:COUNT], make_extract(), model_sha256="a" * 64, image_size=(160, 64),
                        codecs=CODECS, progress=False, index_backend="faiss-flat")
    monkeypatch.setattr(feature_store, "faiss_available", lambda: False)
    store = FeatureStore.load(directory)
    assert store.index().backend == "numpy"  # ranks exactly, from the stored embeddings
    with pytest.raises(ValueError, match="keeps a FAISS shortlist index: install faiss-cpu to add images"):
        add_to_feature_store(directory, RECORDS[COUNT:], make_extract(), progress=False)
    assert FeatureStore.load(directory).count == COUNT
