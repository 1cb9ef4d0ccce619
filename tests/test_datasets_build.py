"""build_dataset, the summary table and the `msreid datasets` command."""

import os

import cv2
import numpy as np
import pytest

from keras_msreid.cli import main
from keras_msreid.datasets import DATASETS, ReIDDataset, build_dataset

TRAIN = ["0002_c1_a.jpg", "0002_c2_b.jpg", "0007_c3_a.jpg", "0011_c1_a.jpg", "0011_c2_b.jpg"]
QUERY = ["0003_c1_a.jpg", "0005_c2_a.jpg"]
GALLERY = ["0003_c2_b.jpg", "0005_c1_b.jpg", "0000_c3_a.jpg"]


def write_folder(root):
    color = np.random.default_rng(0).integers(0, 256, (16, 8, 3), dtype=np.uint8)
    for folder, names in (
        ("bounding_box_train", TRAIN), ("query", QUERY), ("bounding_box_test", GALLERY)
    ):
        os.makedirs(root / folder)
        for name in names:
            assert cv2.imwrite(str(root / folder / name), color)
    return str(root)


def test_registry_names():
    assert sorted(DATASETS) == ["cuhk01", "cuhk03", "dukemtmc", "folder", "market1501", "msmt17"]


def test_unknown_name_and_option(tmp_path):
    with pytest.raises(
        ValueError,
        match="Unknown dataset 'market': expected one of market1501, dukemtmc, msmt17, "
        "cuhk03, cuhk01, folder",
    ):
        build_dataset("market", str(tmp_path))
    with pytest.raises(
        ValueError,
        match="Dataset 'cuhk01' has no option variant; its options: num_test_ids, split_seed",
    ):
        build_dataset("cuhk01", str(tmp_path), variant="labeled")
    with pytest.raises(ValueError, match="Dataset 'folder' has no option seed; its options: none"):
        build_dataset("folder", str(tmp_path), seed=1)


def test_check_files_drops_corrupt_images_and_keeps_train_ids_contiguous(tmp_path):
    root = write_folder(tmp_path)
    (tmp_path / "bounding_box_train" / "0007_c3_a.jpg").write_bytes(b"not a jpeg")
    unchecked = build_dataset("folder", root)
    assert sorted({r.pid for r in unchecked.train}) == [0, 1, 2]

    dataset = build_dataset("folder", root, check_files=True)
    assert [(os.path.basename(r.path), r.pid) for r in dataset.train] == [
        ("0002_c1_a.jpg", 0), ("0002_c2_b.jpg", 0), ("0011_c1_a.jpg", 1), ("0011_c2_b.jpg", 1)
    ]
    assert dataset.query == unchecked.query and dataset.gallery == unchecked.gallery


def test_check_files_fails_on_a_split_that_does_not_decode(tmp_path):
    root = write_folder(tmp_path)
    for name in QUERY:
        (tmp_path / "query" / name).write_bytes(b"")
    with pytest.raises(ValueError, match=f"No image of the query split of {root} decodes"):
        build_dataset("folder", root, check_files=True)


def test_summary_table(tmp_path):
    dataset = build_dataset("folder", write_folder(tmp_path))
    assert isinstance(dataset, ReIDDataset)
    assert dataset.summary() == "\n".join([
        f"=> Loaded folder from {tmp_path}",
        "  ----------------------------------------",
        "  subset   | # ids | # images | # cameras",
        "  ----------------------------------------",
        "  train    |     3 |        5 |         3",
        "  query    |     2 |        2 |         2",
        "  gallery  |     3 |        3 |         3",
        "  ----------------------------------------",
    ])
    assert (dataset.num_query_pids, dataset.num_query_imgs, dataset.num_query_cams) == (2, 2, 2)
    assert (dataset.num_gallery_pids, dataset.num_gallery_imgs, dataset.num_gallery_cams) == (
        3, 3, 3
    )


def test_cli(tmp_path, capsys):
    root = write_folder(tmp_path)
    assert main(["datasets", "folder", root, "--check-files"]) == 0
    assert "  train    |     3 |        5 |         3" in capsys.readouterr().out

    assert main(["datasets", "cuhk01", str(tmp_path / "nope"), "--num-test-ids", "5"]) == 2
    assert capsys.readouterr().err.startswith(
        f"msreid datasets: error: Dataset folder not found: {tmp_path / 'nope'}"
    )
