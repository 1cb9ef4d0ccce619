"""CUHK01 reader: camera from the image index, seeded identity splits."""

import logging
import os

import cv2
import numpy as np
import pytest

from keras_msreid.datasets.cuhk01 import load_cuhk01

NUM_IDS = 10


def write_cuhk01(image_dir, num_ids=NUM_IDS):
    os.makedirs(image_dir, exist_ok=True)
    for pid in range(1, num_ids + 1):
        for index in range(1, 5):
            path = os.path.join(image_dir, f"{pid:04d}{index:03d}.png")
            assert cv2.imwrite(path, np.full((16, 6, 3), pid, np.uint8))
    return str(image_dir)


def original_pid(record):
    return int(os.path.basename(record.path)[:4])


def load_quietly(root, **kwargs):
    with pytest.warns(UserWarning, match="does not match the published cuhk01 counts"):
        return load_cuhk01(root, **kwargs)


@pytest.mark.parametrize("layout", ["parent_of_campus", "campus", "flat"])
def test_root_forms(tmp_path, layout):
    image_dir = tmp_path / "campus" if layout != "flat" else tmp_path
    write_cuhk01(image_dir)
    root = tmp_path / "campus" if layout == "campus" else tmp_path
    dataset = load_quietly(str(root), num_test_ids=4)
    assert dataset.root == str(image_dir)


def test_split_protocol(tmp_path):
    write_cuhk01(tmp_path)
    dataset = load_quietly(str(tmp_path), num_test_ids=4, split_seed=0)

    train_ids = {original_pid(r) for r in dataset.train}
    test_ids = {r.pid for r in dataset.query}
    assert len(train_ids) == 6 and len(test_ids) == 4
    assert train_ids | test_ids == set(range(1, NUM_IDS + 1))
    assert {r.pid for r in dataset.gallery} == test_ids
    # Train: all 4 images per id, relabelled in order of the original id.
    assert len(dataset.train) == 24
    label_of = {pid: label for label, pid in enumerate(sorted(train_ids))}
    assert all(r.pid == label_of[original_pid(r)] for r in dataset.train)
    # Camera A (images 001-002) is camid 0 and the query; camera B (003-004) the gallery.
    for record in dataset.train + dataset.query + dataset.gallery:
        index = int(os.path.basename(record.path)[4:7])
        assert record.camid == (0 if index <= 2 else 1)
    assert len(dataset.query) == 8 and {r.camid for r in dataset.query} == {0}
    assert len(dataset.gallery) == 8 and {r.camid for r in dataset.gallery} == {1}
    assert all(r.pid == original_pid(r) for r in dataset.query + dataset.gallery)
    assert dataset.protocol == "cuhk01"  # what every command scores it by unless told otherwise


def test_validation_split_is_carved_from_the_training_identities(tmp_path):
    write_cuhk01(tmp_path)
    test = load_quietly(str(tmp_path), num_test_ids=4, split_seed=1)
    validation = load_quietly(str(tmp_path), num_test_ids=4, split_seed=1, validation_ids=2)
    test_ids = {r.pid for r in test.query}
    train_ids = {original_pid(r) for r in test.train}
    held_out = {r.pid for r in validation.query}
    assert len(held_out) == 2 and held_out <= train_ids  # never a test identity
    assert {r.pid for r in validation.gallery} == held_out
    assert {original_pid(r) for r in validation.train} == train_ids - held_out
    assert not test_ids & ({original_pid(r) for r in validation.train} | held_out)
    with pytest.raises(ValueError, match="validation_ids must be between 1 and 4"):
        load_cuhk01(str(tmp_path), num_test_ids=4, validation_ids=5)


def test_split_depends_only_on_the_seed(tmp_path):
    write_cuhk01(tmp_path)

    def test_ids(seed):
        return {r.pid for r in load_quietly(str(tmp_path), num_test_ids=4, split_seed=seed).query}

    assert test_ids(0) == test_ids(0)
    splits = [test_ids(seed) for seed in range(8)]
    assert len({frozenset(s) for s in splits}) > 1
    assert set().union(*splits) == set(range(1, NUM_IDS + 1))


def test_published_counts_follow_num_test_ids(tmp_path):
    write_cuhk01(tmp_path)
    with pytest.warns(UserWarning) as caught:
        load_cuhk01(str(tmp_path), num_test_ids=3)
    assert [str(w.message) for w in caught] == [
        f"cuhk01 at {tmp_path} does not match the published cuhk01 counts: "
        "train_ids expected 968, found 7; train_images expected 3872, found 28"
    ]


def test_bad_names_are_reported(tmp_path, caplog):
    write_cuhk01(tmp_path)
    for name in ("0001005.png", "photo.png"):
        assert cv2.imwrite(str(tmp_path / name), np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "readme.txt").write_text("CUHK01")
    with caplog.at_level(logging.WARNING, logger="keras_msreid.datasets"):
        dataset = load_quietly(str(tmp_path), num_test_ids=4)
    assert [r.getMessage() for r in caplog.records] == [
        f"Skipping {tmp_path / name}: the file name does not follow the CUHK01 pattern "
        "PPPPNNN.png with image NNN in 001-004 (e.g. 0001003.png)"
        for name in ("0001005.png", "photo.png")
    ]
    assert len(dataset.train) + len(dataset.query) + len(dataset.gallery) == 4 * NUM_IDS


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"Dataset folder not found: {tmp_path / 'x'}"):
        load_cuhk01(str(tmp_path / "x"))
    empty_message = f"No CUHK01 images .named like 0001001.png. in {tmp_path}"
    with pytest.raises(ValueError, match=empty_message):
        load_cuhk01(str(tmp_path))
    write_cuhk01(tmp_path)
    for bad in (0, NUM_IDS):
        with pytest.raises(
            ValueError,
            match=f"between 1 and 9 for the 10 identities in {tmp_path}, got {bad}",
        ):
            load_cuhk01(str(tmp_path), num_test_ids=bad)


def test_split_without_camera_a_images_is_an_error(tmp_path):
    write_cuhk01(tmp_path)
    for name in os.listdir(tmp_path):
        if name[4:7] in ("001", "002"):
            os.remove(tmp_path / name)
    with pytest.raises(
        ValueError, match="Split seed 0 of .* leaves no camera A image of the 4 test identities"
    ):
        load_cuhk01(str(tmp_path), num_test_ids=4)
