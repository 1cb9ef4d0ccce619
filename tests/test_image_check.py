"""check_images: corrupt and missing files dropped, grayscale and RGBA kept and reported."""

import logging
import subprocess
import sys

import cv2
import numpy as np
import pytest

from keras_msreid.datasets import ImageRecord, check_images


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    color = rng.integers(0, 256, (16, 8, 3), dtype=np.uint8)
    paths = {
        "rgb_jpg": tmp_path / "0001_c1_rgb.jpg",
        "rgb_png": tmp_path / "0001_c2_rgb.png",
        "gray": tmp_path / "0002_c1_gray.png",
        "rgba": tmp_path / "0002_c2_rgba.png",
        "corrupt": tmp_path / "0003_c1_corrupt.jpg",
        "truncated": tmp_path / "0003_c2_truncated.jpg",
        "empty": tmp_path / "0004_c1_empty.jpg",
        "missing": tmp_path / "0004_c2_missing.jpg",
    }
    assert cv2.imwrite(str(paths["rgb_jpg"]), color)
    assert cv2.imwrite(str(paths["rgb_png"]), color)
    assert cv2.imwrite(str(paths["gray"]), color[..., 0])
    assert cv2.imwrite(str(paths["rgba"]), np.dstack([color, color[..., :1]]))
    paths["corrupt"].write_bytes(rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
    encoded = cv2.imencode(".jpg", color)[1].tobytes()
    paths["truncated"].write_bytes(encoded[: len(encoded) // 2])
    paths["empty"].write_bytes(b"")
    return {key: str(path) for key, path in paths.items()}


def test_bad_files_dropped_and_unusual_ones_reported_once(files, caplog):
    order = ["gray", "rgb_jpg", "corrupt", "rgba", "truncated"]
    order += ["gray", "empty", "missing", "rgb_png"]
    records = [ImageRecord(files[key], pid, 0) for pid, key in enumerate(order)]
    log = logging.getLogger("test_image_check")
    with caplog.at_level(logging.INFO, logger="test_image_check"):
        kept = check_images(records, log=log)

    assert kept == [records[i] for i in (0, 1, 3, 5, 8)]  # in order, the duplicate kept
    assert sorted(r.getMessage() for r in caplog.records) == sorted([
        f"{files['gray']} is grayscale, converted to RGB when loaded",
        f"{files['rgba']} is RGBA, converted to RGB when loaded",
        f"Skipping {files['corrupt']}: the file is not a decodable image (corrupt or truncated)",
        f"Skipping {files['truncated']}: the file is not a decodable image (corrupt or truncated)",
        f"Skipping {files['empty']}: the file is not a decodable image (corrupt or truncated)",
        f"Skipping {files['missing']}: the file does not exist",
        "4 of 9 images skipped as missing or corrupt",
    ])
    assert caplog.records[-1].getMessage() == "4 of 9 images skipped as missing or corrupt"
    assert caplog.records[-1].levelno == logging.WARNING


def test_clean_records_pass_unchanged(files, caplog):
    records = [ImageRecord(files["rgb_jpg"], 0, 0), ImageRecord(files["rgb_png"], 1, 1)]
    with caplog.at_level(logging.INFO, logger="keras_msreid.datasets"):
        assert check_images(records, num_threads=1) == records
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "0 of 2 images skipped as missing or corrupt")
    ]


def test_datasets_package_does_not_import_tensorflow():
    code = (
        "import sys, keras_msreid.datasets, keras_msreid.cli.datasets; "
        "sys.exit('tensorflow' in sys.modules or 'keras' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
