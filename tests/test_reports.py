"""Report pictures: ranked list, CMC plot, STN boxes (numpy / OpenCV / matplotlib only)."""

import subprocess
import sys

import cv2
import numpy as np
import pytest

from keras_msreid.reports.attention import SCALE, draw_attention, theta_to_boxes
from keras_msreid.reports.cmc_plot import plot_cmc
from keras_msreid.reports.ranked_list import (
    CAPTION_HEIGHT,
    FRAME,
    GAP,
    MATCH_COLOR,
    MISMATCH_COLOR,
    draw_ranked_list,
)


def boxes_by_sampling(theta, map_size, image_size, patch_size):
    """Reference: the pixel span of every sampled cell, united (one sample at a time)."""
    boxes = []
    for scale_y, scale_x, centre_y, centre_x in theta:
        spans = []
        for axis, (centre, scale) in enumerate(((centre_y, scale_y), (centre_x, scale_x))):
            cells, pixels, samples = map_size[axis], image_size[axis], patch_size[axis]
            steps = np.linspace(-1, 1, samples) if samples > 1 else [0.0]
            positions = [(centre + scale * step + 1) / 2 * (cells - 1) for step in steps]
            low = min(max(0.0, p * pixels / cells) for p in positions)
            high = max(min(pixels, (p + 1) * pixels / cells) for p in positions)
            spans.append((low, high))
        (y0, y1), (x0, x1) = spans
        boxes.append([x0, y0, x1, y1])
    return np.array(boxes)


def test_theta_to_boxes_matches_sampling_reference_and_stays_inside():
    theta = np.array([[0.2, 0.5, 0.0, 0.0], [0.3, 0.4, -0.6, 0.5], [0.5, 0.9, 0.9, -0.9]])
    boxes = theta_to_boxes(theta, map_size=(20, 8), image_size=(160, 64), patch_size=(5, 3))
    np.testing.assert_allclose(boxes, boxes_by_sampling(theta, (20, 8), (160, 64), (5, 3)))
    assert np.all(boxes >= 0) and np.all(boxes[:, [0, 2]] <= 64) and np.all(boxes[:, [1, 3]] <= 160)
    assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
    # A native-scale patch (one cell per sample) centred on a 20x8 map of 8-pixel cells: the
    # centre lies between cells (9.5, 3.5), so the samples span cells 7.5..11.5 and 2.5..4.5.
    native = np.array([[4 / 19, 2 / 7, 0.0, 0.0]])
    np.testing.assert_allclose(theta_to_boxes(native, (20, 8), (160, 64), (5, 3)), [[20, 60, 44, 100]], atol=1e-9)
    with pytest.raises(ValueError, match=r"theta must have shape \(parts, 4\), got \(4,\)"):
        theta_to_boxes(np.zeros(4), (20, 8), (160, 64), (5, 3))


def test_draw_attention_size(tmp_path):
    images = [np.full((32, 16, 3), 200, np.uint8), np.zeros((32, 16, 3), np.uint8)]
    boxes = [{"mid": np.array([[2.0, 4.0, 10.0, 20.0]]), "high": np.array([[0.0, 0.0, 16.0, 32.0]])}] * 2
    picture = draw_attention(images, boxes, tmp_path / "attention.png", captions=["a", "b"])
    written = cv2.imread(str(tmp_path / "attention.png"))
    assert written.shape == picture.shape == (32 * SCALE + 3 * 22, 2 * 16 * SCALE + 12, 3)


def test_ranked_list_layout_and_frame_colours(tmp_path):
    paths = []
    for index in range(4):
        paths.append(str(tmp_path / f"{index}.jpg"))
        cv2.imwrite(paths[-1], np.full((40, 20, 3), 60 * index, np.uint8))
    picture = draw_ranked_list(
        [paths[0], paths[1]], paths, np.array([[1, 2, 3], [0, 2, 3]]), np.array([[0.9, 0.5, 0.1], [0.8, 0.7, 0.2]]),
        np.array([[True, False, False], [False, True, False]]), tmp_path / "ranked.png", thumb_size=(32, 16),
    )
    cell_w, cell_h = 16 + 2 * FRAME, 32 + 2 * FRAME + CAPTION_HEIGHT
    assert picture.shape == (2 * cell_h, 4 * cell_w + GAP, 3)
    assert cv2.imread(str(tmp_path / "ranked.png")).shape == picture.shape
    first_ranked_left = GAP + cell_w
    assert tuple(picture[1, first_ranked_left + 1]) == MATCH_COLOR  # row 0, rank 1: a match
    assert tuple(picture[cell_h + 1, first_ranked_left + 1]) == MISMATCH_COLOR  # row 1, rank 1: not


def test_ranked_list_draws_a_placeholder_for_an_unreadable_image(tmp_path, caplog):
    good = str(tmp_path / "good.jpg")
    cv2.imwrite(good, np.zeros((8, 4, 3), np.uint8))
    picture = draw_ranked_list([good], [str(tmp_path / "missing.jpg")], [[0]], [[0.5]], [[False]], thumb_size=(8, 4))
    assert picture.shape[0] == 8 + 2 * FRAME + CAPTION_HEIGHT
    assert "missing.jpg" in caplog.text
    with pytest.raises(ValueError, match="must be \\(queries, n\\) arrays of one shape"):
        draw_ranked_list([good], [good], [[0]], [[0.5, 0.2]], [[False]])


def test_cmc_plot_of_several_runs(tmp_path):
    plot_cmc({"run-a": [0.5, 0.7, 0.9], "run-b": np.linspace(0.2, 0.8, 20)}, tmp_path / "cmc.png")
    image = cv2.imread(str(tmp_path / "cmc.png"))
    assert image.shape == (450, 600, 3)
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 10  # not a blank canvas
    with pytest.raises(ValueError, match="curve 'bad' must be a non-empty list of accuracies in \\[0, 1\\]"):
        plot_cmc({"bad": [1.5]}, tmp_path / "bad.png")


def test_drawing_modules_do_not_import_tensorflow():
    code = (
        "import sys\n"
        "import keras_msreid.reports.ranked_list, keras_msreid.reports.cmc_plot, keras_msreid.reports.attention\n"
        "import keras_msreid.retrieval.ranking, keras_msreid.retrieval.shortlist, keras_msreid.retrieval.feature_store\n"
        "print(','.join(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
