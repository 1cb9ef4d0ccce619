"""Readers of the Market-1501 layout: market1501, dukemtmc, cuhk03 (new protocol), folder."""

import json
import logging
import os
import warnings

import cv2
import numpy as np
import pytest

from keras_msreid.datasets import market1501 as market1501_module
from keras_msreid.datasets.counts import ExpectedCounts
from keras_msreid.datasets.cuhk03 import load_cuhk03
from keras_msreid.datasets.dukemtmc import load_dukemtmc
from keras_msreid.datasets.folder import load_folder
from keras_msreid.datasets.market1501 import load_market1501
from keras_msreid.datasets.market_style import parse_market_name

TRAIN = [
    "0002_c1s1_000451_03.jpg",
    "0002_c2s1_000301_01.jpg",
    "0007_c3s1_000101_01.jpg",
    "0011_c6s2_000201_02.jpg",
    "-1_c1s1_000001_00.jpg",  # junk: dropped
    "0000_c1s1_000002_00.jpg",  # distractor: dropped outside the gallery
]
QUERY = ["0003_c1s1_000101_00.jpg", "0003_c4s1_000201_00.jpg", "0005_c2s1_000301_00.jpg"]
GALLERY = [
    "0003_c1s1_000111_01.jpg",
    "0003_c2s1_000222_01.jpg",
    "0005_c5s1_000333_01.jpg",
    "0000_c1s1_000444_01.jpg",  # distractor: kept in the gallery
    "-1_c3s1_000555_01.jpg",  # junk: dropped
]
# Counts of the layout above once junk and misplaced distractors are dropped.
FAKE_COUNTS = ExpectedCounts(train_ids=3, train_images=4, query_images=3, gallery_images=4)


def write_image(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    assert cv2.imwrite(str(path), np.full((8, 4, 3), 128, np.uint8))


def write_market_layout(data_dir, extension=".jpg", extra_train=()):
    splits = {"bounding_box_train": TRAIN, "query": QUERY, "bounding_box_test": GALLERY}
    for folder, names in splits.items():
        for name in names:
            write_image(os.path.join(data_dir, folder, name.replace(".jpg", extension)))
    for name in extra_train:
        write_image(os.path.join(data_dir, "bounding_box_train", name))
    return str(data_dir)


def by_name(records):
    return {os.path.basename(r.path): (r.pid, r.camid) for r in records}


def test_parse_market_name():
    assert parse_market_name("0002_c1s1_000451_03.jpg") == (2, 0)
    assert parse_market_name("/some/dir_c9/-1_c6s2_000001_00.jpg") == (-1, 5)
    assert parse_market_name("0001_c8_f0046182.jpg") == (1, 7)
    assert parse_market_name("0001_c12_0001.png") == (1, 11)
    assert parse_market_name("0001_c0_0001.png") is None
    assert parse_market_name("--1_c1s1_0001.jpg") is None
    assert parse_market_name("person_c1.jpg") is None


@pytest.mark.parametrize("release_folder", [True, False])
def test_market1501_records(tmp_path, release_folder):
    data_dir = tmp_path / "Market-1501-v15.09.15" if release_folder else tmp_path
    write_market_layout(data_dir)
    with pytest.warns(UserWarning):
        dataset = load_market1501(str(tmp_path))

    assert dataset.name == "market1501"
    assert dataset.root == str(data_dir)
    assert by_name(dataset.train) == {
        "0002_c1s1_000451_03.jpg": (0, 0),
        "0002_c2s1_000301_01.jpg": (0, 1),
        "0007_c3s1_000101_01.jpg": (1, 2),
        "0011_c6s2_000201_02.jpg": (2, 5),
    }
    assert by_name(dataset.query) == {
        "0003_c1s1_000101_00.jpg": (3, 0),
        "0003_c4s1_000201_00.jpg": (3, 3),
        "0005_c2s1_000301_00.jpg": (5, 1),
    }
    assert by_name(dataset.gallery) == {
        "0003_c1s1_000111_01.jpg": (3, 0),
        "0003_c2s1_000222_01.jpg": (3, 1),
        "0005_c5s1_000333_01.jpg": (5, 4),
        "0000_c1s1_000444_01.jpg": (0, 0),
    }
    for record in dataset.train + dataset.query + dataset.gallery:
        assert os.path.isabs(record.path) and os.path.isfile(record.path)
    assert (dataset.num_train_pids, dataset.num_train_imgs, dataset.num_train_cams) == (3, 4, 4)


def test_published_counts_mismatch_names_each_quantity(tmp_path):
    write_market_layout(tmp_path)
    with pytest.warns(UserWarning) as caught:
        load_market1501(str(tmp_path))
    assert [str(w.message) for w in caught] == [
        f"market1501 at {tmp_path} does not match the published market1501 counts: "
        "train_ids expected 751, found 3; train_images expected 12936, found 4; "
        "query_images expected 3368, found 3; gallery_images expected 15913, found 4"
    ]


def test_matching_published_counts_do_not_warn(tmp_path, monkeypatch):
    write_market_layout(tmp_path)
    monkeypatch.setattr(market1501_module, "PUBLISHED_COUNTS", FAKE_COUNTS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_market1501(str(tmp_path))


def write_manifest(root, counts):
    manifest = {
        "generator": "keras_msreid.synthetic",
        "seed": 0,
        "num_ids": 6,
        "num_cameras": 6,
        "counts": counts._asdict(),
    }
    path = os.path.join(root, "msreid_synthetic.json")
    with open(path, "w") as file:
        json.dump(manifest, file)
    return path


@pytest.mark.parametrize("loader", [load_market1501, load_folder])
def test_synthetic_manifest_replaces_published_counts(tmp_path, loader):
    write_market_layout(tmp_path)
    write_manifest(tmp_path, FAKE_COUNTS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loader(str(tmp_path))

    manifest = write_manifest(tmp_path, FAKE_COUNTS._replace(train_images=5, gallery_images=3))
    with pytest.warns(UserWarning) as caught:
        dataset = loader(str(tmp_path))
    assert [str(w.message) for w in caught] == [
        f"{dataset.name} at {tmp_path} does not match {manifest}: "
        "train_images expected 5, found 4; gallery_images expected 3, found 4"
    ]


def test_invalid_manifest_is_an_error_naming_it(tmp_path):
    write_market_layout(tmp_path)
    path = tmp_path / "msreid_synthetic.json"
    path.write_text('{"generator": "keras_msreid.synthetic", "counts": {"train_ids": 3}}')
    with pytest.raises(ValueError, match=f"Invalid synthetic dataset manifest {path}: .*train_ima"):
        load_folder(str(tmp_path))


def test_unparsable_names_are_reported_and_other_files_ignored(tmp_path, caplog):
    write_market_layout(tmp_path, extra_train=["bad_name.jpg", "0004_x1.png"])
    (tmp_path / "bounding_box_train" / "0004_c1_notes.txt").write_text("not an image")
    (tmp_path / "bounding_box_train" / "Thumbs.db").write_bytes(b"\0")
    os.makedirs(tmp_path / "query" / "0009_c1_subfolder.jpg")
    with caplog.at_level(logging.WARNING, logger="keras_msreid.datasets"):
        dataset = load_folder(str(tmp_path))
    train_dir = tmp_path / "bounding_box_train"
    assert [r.getMessage() for r in caplog.records] == [
        f"Skipping {train_dir / name}: the file name does not follow the Market-1501 "
        "pattern PPPP_cC... (e.g. 0002_c1s1_000451_03.jpg)"
        for name in ["0004_x1.png", "bad_name.jpg"]
    ]
    assert len(dataset.train) == 4 and len(dataset.query) == 3


def test_missing_root_and_split_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"Dataset folder not found: {tmp_path / 'nope'}"):
        load_market1501(str(tmp_path / "nope"))
    write_market_layout(tmp_path)
    os.rename(tmp_path / "query", tmp_path / "queries")
    with pytest.raises(
        FileNotFoundError,
        match=f"Dataset folder not found: {tmp_path / 'query'}. Expected layout: .*box_test/",
    ):
        load_folder(str(tmp_path))


def test_split_without_usable_images_is_an_error(tmp_path):
    write_market_layout(tmp_path)
    query = tmp_path / "query"
    for name in os.listdir(query):
        os.remove(query / name)
    write_image(str(query / "0000_c1s1_000001_00.jpg"))  # distractors are not queries
    with pytest.raises(ValueError, match=f"No usable images in {query} \\(1 skipped"):
        load_folder(str(tmp_path))


def test_dukemtmc(tmp_path):
    write_market_layout(tmp_path / "DukeMTMC-reID")
    with pytest.warns(UserWarning, match="train_ids expected 702, found 3"):
        dataset = load_dukemtmc(str(tmp_path))
    assert dataset.name == "dukemtmc"
    assert (dataset.num_train_pids, len(dataset.query), len(dataset.gallery)) == (3, 3, 4)


@pytest.mark.parametrize(
    "variant, expected_train_images", [("labeled", 7368), ("detected", 7365)]
)
def test_cuhk03_variants(tmp_path, variant, expected_train_images):
    write_market_layout(tmp_path / "cuhk03-np" / "labeled", extension=".png")
    write_market_layout(tmp_path / "cuhk03-np" / "detected", extension=".png")
    detected_train = tmp_path / "cuhk03-np" / "detected" / "bounding_box_train"
    os.remove(detected_train / "0011_c6s2_000201_02.png")
    with pytest.warns(
        UserWarning, match=f"train_images expected {expected_train_images}, found"
    ):
        dataset = load_cuhk03(str(tmp_path), variant=variant)
    assert dataset.name == f"cuhk03_{variant}"
    assert dataset.root == str(tmp_path / "cuhk03-np" / variant)
    assert dataset.num_train_imgs == (4 if variant == "labeled" else 3)
    assert all(r.path.endswith(".png") for r in dataset.train)


def test_cuhk03_errors(tmp_path):
    with pytest.raises(ValueError, match="Unknown CUHK03 variant 'manual': expected one of"):
        load_cuhk03(str(tmp_path), variant="manual")
    write_market_layout(tmp_path / "labeled")
    with pytest.warns(UserWarning):
        assert load_cuhk03(str(tmp_path)).root == str(tmp_path / "labeled")
    missing = tmp_path / "detected"
    with pytest.raises(FileNotFoundError, match=f"Dataset folder not found: {missing}"):
        load_cuhk03(str(tmp_path), variant="detected")
