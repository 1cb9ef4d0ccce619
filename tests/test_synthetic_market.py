"""write_market1501: layout, names, counts, determinism and safe writing."""

import collections
import filecmp
import json
import os
import re
import warnings

import cv2
import pytest

from keras_msreid.datasets import build_dataset
from keras_msreid.synthetic import market, write_market1501

# The full Market-1501 file name: person, camera, sequence, frame, box.
NAME = re.compile(r"^(-1|\d{4})_c(\d)s(\d)_(\d{6})_(\d{2})\.jpg$")
FOLDERS = ("bounding_box_train", "bounding_box_test", "query")
SMALL = dict(num_ids=8, num_cameras=3, seed=5, image_size=(32, 16))


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("synthetic") / "market"
    write_market1501(out_dir, **SMALL)
    return out_dir


def parsed(out_dir, folder):
    """(person id, camera) of every file in a folder; fails on any name that does not parse."""
    entries = []
    for name in sorted(os.listdir(out_dir / folder)):
        match = NAME.match(name)
        assert match, f"{folder}/{name} is not a Market-1501 name"
        entries.append((int(match.group(1)), int(match.group(2))))
    return entries


def test_layout_and_names(dataset_dir):
    assert sorted(os.listdir(dataset_dir)) == sorted(FOLDERS + ("msreid_synthetic.json",))
    train = parsed(dataset_dir, "bounding_box_train")
    query = parsed(dataset_dir, "query")
    gallery = parsed(dataset_dir, "bounding_box_test")
    assert all(pid > 0 for pid, _ in train + query)  # junk and distractors only in the gallery
    gallery_ids = {pid for pid, _ in gallery}
    assert {0, -1} <= gallery_ids
    train_ids, test_ids = {pid for pid, _ in train}, {pid for pid, _ in query}
    assert len(train_ids) == len(test_ids) == SMALL["num_ids"] // 2
    assert not train_ids & test_ids
    assert gallery_ids - {0, -1} == test_ids
    assert all(1 <= camera <= SMALL["num_cameras"] for _, camera in train + query + gallery)


def test_images_decode_at_the_requested_size(dataset_dir):
    for folder in FOLDERS:
        name = sorted(os.listdir(dataset_dir / folder))[0]
        image = cv2.imread(str(dataset_dir / folder / name), cv2.IMREAD_UNCHANGED)
        assert image.shape == SMALL["image_size"] + (3,)


def test_manifest_counts_equal_the_files(dataset_dir):
    manifest = json.loads((dataset_dir / "msreid_synthetic.json").read_text())
    train = parsed(dataset_dir, "bounding_box_train")
    gallery = parsed(dataset_dir, "bounding_box_test")
    assert manifest == {
        "generator": "keras_msreid.synthetic",
        "seed": SMALL["seed"],
        "num_ids": SMALL["num_ids"],
        "num_cameras": SMALL["num_cameras"],
        "image_size": list(SMALL["image_size"]),
        "counts": {
            "train_ids": len({pid for pid, _ in train}),
            "train_images": len(train),
            "query_images": len(os.listdir(dataset_dir / "query")),
            "gallery_images": sum(pid != -1 for pid, _ in gallery),
        },
    }


def test_every_identity_in_two_cameras_with_one_query_per_camera(dataset_dir):
    cameras = collections.defaultdict(set)
    for pid, camera in parsed(dataset_dir, "bounding_box_train"):
        cameras[pid].add(camera)
    assert all(len(c) >= 2 for c in cameras.values())
    query = parsed(dataset_dir, "query")
    gallery = parsed(dataset_dir, "bounding_box_test")
    assert len(query) == len(set(query))  # one query per identity and camera
    for pid, camera in query:
        gallery_cameras = {c for p, c in gallery if p == pid}
        assert camera in gallery_cameras  # same-camera entries, which the protocol drops
        assert gallery_cameras - {camera}  # and a valid match in another camera
        assert {c for p, c in query if p == pid} == gallery_cameras


def test_reads_back_through_the_market_reader_with_its_counts(dataset_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a count mismatch with the manifest warns
        dataset = build_dataset("market1501", str(dataset_dir))
    counts = json.loads((dataset_dir / "msreid_synthetic.json").read_text())["counts"]
    assert (dataset.num_train_pids, dataset.num_train_imgs, len(dataset.query), len(dataset.gallery)) == (
        counts["train_ids"], counts["train_images"], counts["query_images"], counts["gallery_images"])


def test_same_seed_is_byte_identical_and_another_seed_differs(tmp_path, dataset_dir):
    write_market1501(tmp_path / "again", workers=1, **SMALL)  # the fixture used 4 threads
    for folder in FOLDERS:
        names = sorted(os.listdir(dataset_dir / folder))
        assert names == sorted(os.listdir(tmp_path / "again" / folder))
        match, mismatch, errors = filecmp.cmpfiles(dataset_dir / folder, tmp_path / "again" / folder, names,
                                                   shallow=False)
        assert (mismatch, errors) == ([], [])
    write_market1501(tmp_path / "other", **dict(SMALL, seed=6))
    assert sorted(os.listdir(tmp_path / "other" / "query")) != sorted(os.listdir(dataset_dir / "query"))


def test_refuses_to_overwrite_without_permission(tmp_path):
    out_dir = tmp_path / "data"
    out_dir.mkdir()
    (out_dir / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match=f"output directory {re.escape(str(out_dir))} exists and is not empty"):
        write_market1501(out_dir, **SMALL)
    assert os.listdir(out_dir) == ["notes.txt"]
    write_market1501(out_dir, overwrite=True, **SMALL)
    assert "notes.txt" not in os.listdir(out_dir) and "query" in os.listdir(out_dir)
    assert sorted(os.listdir(tmp_path)) == ["data"]  # no staging or old copies left beside it


def test_an_empty_existing_directory_is_filled(tmp_path):
    (tmp_path / "data").mkdir()
    manifest = write_market1501(tmp_path / "data", **SMALL)
    assert len(os.listdir(tmp_path / "data" / "query")) == manifest["counts"]["query_images"]


def test_a_failed_run_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    calls = []
    real_render = market._render

    def failing_render(*args):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real_render(*args)

    monkeypatch.setattr(market, "_render", failing_render)
    with pytest.raises(KeyboardInterrupt):
        write_market1501(tmp_path / "data", **SMALL)
    assert os.listdir(tmp_path) == []


def test_progress_reports_every_picture(tmp_path):
    reports = []
    manifest = write_market1501(tmp_path / "data", progress=lambda done, total: reports.append((done, total)), **SMALL)
    total = reports[-1][1]
    assert reports == [(i, total) for i in range(1, total + 1)]
    counts = manifest["counts"]
    assert total > counts["train_images"] + counts["query_images"] + counts["gallery_images"]  # + junk


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_ids=1), "num_ids must be between 2 and 9999"),
        (dict(num_cameras=10), r"num_cameras must be between 2 and 9 \(Market names hold 1 digit\), got 10"),
        (dict(num_cameras=1), "num_cameras must be between 2 and 9"),
        (dict(image_size=(8, 64)), r"image_size must be \(height, width\) of at least 16 pixels"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        write_market1501(tmp_path / "data", **kwargs)
    assert not (tmp_path / "data").exists()


def test_output_path_that_is_a_file(tmp_path):
    (tmp_path / "data").write_text("")
    with pytest.raises(FileExistsError, match="output path .*data exists and is not a directory"):
        write_market1501(tmp_path / "data", overwrite=True, **SMALL)
