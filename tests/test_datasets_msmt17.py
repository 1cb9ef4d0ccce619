"""MSMT17 reader: list files, V1 and V2 folders, train + val merged."""

import logging
import os

import pytest

from keras_msreid.datasets.msmt17 import load_msmt17

LISTS = {
    "train": [
        "0000/0000_000_01_0303morning_0015_0.jpg 0",
        "0000/0000_001_05_0303morning_0020_1.jpg 0",
        "0001/0001_000_15_0303noon_0101_0.jpg 1",
    ],
    "val": [
        "0001/0001_002_02_0303noon_0200_0.jpg 1",
        "0005/0005_000_03_0304afternoon_0001_0.jpg 5",
    ],
    "query": ["1041/1041_000_07_0303morning_0001_0.jpg 1041"],
    "gallery": [
        "1041/1041_003_09_0303noon_0001_0.jpg 1041",
        "1042/1042_000_07_0303noon_0002_0.jpg 1042",
    ],
}


def write_msmt17(release_dir, train_name="train", test_name="test", extra_lines=()):
    for split, lines in LISTS.items():
        with open(os.path.join(_mkdir(release_dir), f"list_{split}.txt"), "w") as file:
            file.write("\n".join([*lines, *(extra_lines if split == "train" else ())]) + "\n")
    _mkdir(os.path.join(release_dir, train_name))
    _mkdir(os.path.join(release_dir, test_name))


def _mkdir(path):
    os.makedirs(path, exist_ok=True)
    return str(path)


def name_pid_cam(records):
    return [(os.path.basename(r.path), r.pid, r.camid) for r in records]


@pytest.mark.parametrize(
    "release, train_name, test_name",
    [("MSMT17_V1", "train", "test"), ("MSMT17_V2", "mask_train_v2", "mask_test_v2")],
)
def test_msmt17_versions(tmp_path, release, train_name, test_name):
    write_msmt17(tmp_path / release, train_name, test_name)
    with pytest.warns(UserWarning, match="train_ids expected 1041, found 3; train_images expected"):
        dataset = load_msmt17(str(tmp_path))
    release_dir = tmp_path / release
    assert dataset.root == str(release_dir)
    assert dataset.train[0].path == str(
        release_dir / train_name / "0000" / "0000_000_01_0303morning_0015_0.jpg"
    )
    assert dataset.query[0].path.startswith(str(release_dir / test_name) + os.sep)
    # train + val merged, ids 0, 1, 5 relabelled to 0, 1, 2; camera from the third field.
    assert name_pid_cam(dataset.train) == [
        ("0000_000_01_0303morning_0015_0.jpg", 0, 0),
        ("0000_001_05_0303morning_0020_1.jpg", 0, 4),
        ("0001_000_15_0303noon_0101_0.jpg", 1, 14),
        ("0001_002_02_0303noon_0200_0.jpg", 1, 1),
        ("0005_000_03_0304afternoon_0001_0.jpg", 2, 2),
    ]
    assert name_pid_cam(dataset.query) == [("1041_000_07_0303morning_0001_0.jpg", 1041, 6)]
    assert name_pid_cam(dataset.gallery) == [
        ("1041_003_09_0303noon_0001_0.jpg", 1041, 8),
        ("1042_000_07_0303noon_0002_0.jpg", 1042, 6),
    ]


def test_root_may_be_the_release_folder(tmp_path):
    write_msmt17(tmp_path)
    with pytest.warns(UserWarning):
        assert load_msmt17(str(tmp_path)).root == str(tmp_path)


def test_malformed_lines_are_reported_with_file_and_line(tmp_path, caplog):
    bad = ["0000/badname.jpg 0", "0000/0000_000_01_x.jpg", "0000/0000_000_01_x.jpg zero", ""]
    write_msmt17(tmp_path, extra_lines=bad)
    with caplog.at_level(logging.WARNING, logger="keras_msreid.datasets"):
        with pytest.warns(UserWarning):
            dataset = load_msmt17(str(tmp_path))
    list_path = tmp_path / "list_train.txt"
    assert [r.getMessage() for r in caplog.records] == [
        f"Skipping line {number} of {list_path}: expected 'relative/path.jpg pid' with a file "
        f"name like 0000_000_01_0303morning_0015_0.jpg, got {line!r}"
        for number, line in zip((4, 5, 6), bad)
    ]
    assert dataset.num_train_imgs == 5


def test_missing_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"Dataset folder not found: {tmp_path / 'x'}"):
        load_msmt17(str(tmp_path / "x"))
    with pytest.raises(FileNotFoundError, match=f"No MSMT17 release found in {tmp_path}"):
        load_msmt17(str(tmp_path))
    write_msmt17(tmp_path / "MSMT17_V1")
    os.remove(tmp_path / "MSMT17_V1" / "list_gallery.txt")
    with pytest.raises(
        FileNotFoundError,
        match=f"MSMT17 list file not found: {tmp_path / 'MSMT17_V1' / 'list_gallery.txt'}",
    ):
        load_msmt17(str(tmp_path))


def test_list_without_usable_entries(tmp_path):
    write_msmt17(tmp_path)
    (tmp_path / "list_query.txt").write_text("\n\n")
    with pytest.raises(ValueError, match=f"No usable entries in {tmp_path / 'list_query.txt'}"):
        load_msmt17(str(tmp_path))
