"""FeatureStore: round trip, memory-mapped reload, and crash safety (old store kept, partial resumed)."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from keras_msreid.datasets import ImageRecord
from keras_msreid.retrieval.feature_store import (
    MANIFEST_NAME,
    PARTIAL_NAME,
    FeatureStore,
    write_feature_store,
)
from keras_msreid.utils.file_hash import sha256_of_file

COUNT = 20
RECORDS = [ImageRecord(f"/images/{i:03d}.jpg", pid=i // 4, camid=i % 2) for i in range(COUNT)]


def features_of(index, seed=0):
    """Deterministic features of image `index` (so a resumed run can be checked row by row)."""
    rng = np.random.default_rng([seed, index])
    return {"embedding": rng.normal(size=8).astype(np.float32), "low_map": rng.normal(size=(4, 2, 3)).astype(np.float32)}


def make_batches(batch_size=3, seed=0, fail_after=None, starts=None):
    """`batches(start)` for `write_feature_store`; raises after `fail_after` batches (a simulated kill)."""

    def batches(start):
        if starts is not None:
            starts.append(start)
        for number, first in enumerate(range(start, COUNT, batch_size)):
            if fail_after is not None and number == fail_after:
                raise KeyboardInterrupt("killed")
            rows = [features_of(i, seed) for i in range(first, min(first + batch_size, COUNT))]
            yield {name: np.stack([row[name] for row in rows]) for name in rows[0]}

    return batches


def expected(seed=0):
    rows = [features_of(i, seed) for i in range(COUNT)]
    return {name: np.stack([row[name] for row in rows]) for name in rows[0]}


def write(directory, batches, sha="a" * 64, chunk_size=4):
    return write_feature_store(directory, RECORDS, batches, model_sha256=sha, image_size=(160, 64),
                               chunk_size=chunk_size, progress=False)


def test_round_trip_memory_mapped(tmp_path):
    write(tmp_path / "store", make_batches())
    store = FeatureStore.load(tmp_path / "store")
    for name, value in expected().items():
        np.testing.assert_array_equal(store.features[name], value)
        assert isinstance(store.features[name], np.memmap)
    assert store.paths == [record.path for record in RECORDS]
    np.testing.assert_array_equal(store.pids, [record.pid for record in RECORDS])
    np.testing.assert_array_equal(store.camids, [record.camid for record in RECORDS])
    assert (store.count, store.model_sha256, store.image_size) == (COUNT, "a" * 64, (160, 64))
    manifest = json.loads((tmp_path / "store" / MANIFEST_NAME).read_text())
    assert manifest["features"]["low_map"]["shape"] == [4, 2, 3]
    assert manifest["format"] == "keras_msreid.feature_store" and manifest["version"] == 1
    assert not (tmp_path / "store" / PARTIAL_NAME).exists()
    in_memory = FeatureStore.load(tmp_path / "store", mmap=False)
    assert not isinstance(in_memory.features["embedding"], np.memmap)


def test_same_extraction_is_reused_without_running(tmp_path):
    write(tmp_path / "store", make_batches())
    starts = []
    write(tmp_path / "store", make_batches(starts=starts))
    assert starts == []


def test_killed_extraction_leaves_the_old_store_and_resumes(tmp_path):
    directory = tmp_path / "store"
    write(directory, make_batches(seed=0), sha="a" * 64)
    with pytest.raises(KeyboardInterrupt):  # new model, killed after 3 batches of 3: recorded at 6 images
        write(directory, make_batches(seed=1, fail_after=3), sha="b" * 64)
    old = FeatureStore.load(directory)
    assert old.model_sha256 == "a" * 64
    np.testing.assert_array_equal(old.features["embedding"], expected(seed=0)["embedding"])
    assert json.loads((directory / PARTIAL_NAME).read_text())["done"] == 6

    starts = []
    new = write(directory, make_batches(seed=1, starts=starts), sha="b" * 64)
    assert starts == [6]
    assert new.model_sha256 == "b" * 64
    for name, value in expected(seed=1).items():
        np.testing.assert_array_equal(new.features[name], value)
    assert len(list(directory.glob("data-*"))) == 1  # the old model's arrays are gone


KILLED_WRITER = """
import os, signal, sys
import numpy as np
sys.path.insert(0, {tests!r})
import test_feature_store as t
from keras_msreid.retrieval.feature_store import write_feature_store

def batches(start):
    for number, batch in enumerate(t.make_batches(batch_size=2)(start)):
        if number == 5:
            os.kill(os.getpid(), signal.SIGKILL)
        yield batch

write_feature_store({directory!r}, t.RECORDS, batches, model_sha256="c" * 64, image_size=(160, 64),
                    chunk_size=4, progress=False)
"""


def test_sigkill_between_chunks_never_loads_as_complete(tmp_path):
    directory = tmp_path / "store"
    code = KILLED_WRITER.format(tests=str(pathlib.Path(__file__).parent), directory=str(directory))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == -9, result.stderr
    with pytest.raises(FileNotFoundError, match=r"unfinished extraction \(8/20 images\).*resume"):
        FeatureStore.load(directory)
    starts = []
    store = write(directory, make_batches(batch_size=2, starts=starts), sha="c" * 64)
    assert starts == [8]
    for name, value in expected().items():
        np.testing.assert_array_equal(store.features[name], value)


def test_corrupt_or_missing_stores_are_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"no feature store in {tmp_path} \\(no manifest.json\\)"):
        FeatureStore.load(tmp_path)
    store = write(tmp_path / "store", make_batches())
    path = store.directory / store.manifest["features"]["low_map"]["file"]
    del store
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=f"feature file {path} cannot be read"):
        FeatureStore.load(tmp_path / "store")
    manifest = json.loads((tmp_path / "store" / MANIFEST_NAME).read_text())
    manifest["version"] = 99
    (tmp_path / "store" / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="is not a version-1 keras_msreid.feature_store manifest"):
        FeatureStore.load(tmp_path / "store")


def test_batches_that_do_not_fit_the_images_are_an_error(tmp_path):
    def too_few(start):
        yield {"embedding": np.zeros((3, 8), np.float32)}

    with pytest.raises(ValueError, match="batches stopped after 3 of the 20 images"):
        write(tmp_path / "a", too_few)

    def changing(start):
        yield {"embedding": np.zeros((3, 8), np.float32)}
        yield {"embedding": np.zeros((3, 9), np.float32)}

    with pytest.raises(ValueError, match=r"feature 'embedding' has per-image shape \[9\], the store \[8\]"):
        write(tmp_path / "b", changing)


def test_sha256_of_file(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"abc")
    assert sha256_of_file(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_a_store_never_removes_folders_it_did_not_write(tmp_path):
    store_dir = tmp_path / "store"
    write(store_dir, make_batches())
    # A user's folder that happens to match the data-* pattern, and a file of theirs.
    (store_dir / "data-holiday-photos").mkdir()
    (store_dir / "data-holiday-photos" / "beach.jpg").write_bytes(b"mine")
    (store_dir / "notes.txt").write_text("mine")
    write(store_dir, make_batches(seed=1), sha="b" * 64)  # another model: a fresh extraction
    write(store_dir, make_batches(seed=2), sha="c" * 64, chunk_size=4)
    assert (store_dir / "data-holiday-photos" / "beach.jpg").read_bytes() == b"mine"
    assert (store_dir / "notes.txt").read_text() == "mine"
    # The superseded extractions are gone: only the committed data folder is left of ours.
    committed = json.loads((store_dir / MANIFEST_NAME).read_text())["data"]
    ours = sorted(path.name for path in store_dir.glob("data-*") if path.name != "data-holiday-photos")
    assert ours == [committed]
    np.testing.assert_array_equal(FeatureStore.load(store_dir).features["embedding"], expected(seed=2)["embedding"])


def test_an_abandoned_extraction_is_removed_file_by_file(tmp_path):
    store_dir = tmp_path / "store"
    with pytest.raises(KeyboardInterrupt):
        write(store_dir, make_batches(fail_after=2))
    abandoned = json.loads((store_dir / PARTIAL_NAME).read_text())["data"]
    (store_dir / abandoned / "keep.txt").write_text("someone else's")
    write(store_dir, make_batches(seed=1), sha="b" * 64)  # other images: the partial cannot resume
    assert not (store_dir / abandoned / "embedding.npy").exists()
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
        write(store_dir, make_batches())
    assert sorted(os.listdir(store_dir)) == before
    (tmp_path / "a_file").write_text("mine")
    with pytest.raises(ValueError, match="a_file is a file, not a feature store folder"):
        write(tmp_path / "a_file", make_batches())
    assert (tmp_path / "a_file").read_text() == "mine"
