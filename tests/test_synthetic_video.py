"""write_pedestrian_video: readable frames, ground truth that matches the pixels, HOG finds people."""

import dataclasses
import os

import cv2
import numpy as np
import pytest

from keras_msreid.synthetic import identity_appearance, write_pedestrian_video
from conftest import read_frames

SIZE = (240, 320)
SMALL = dict(frames=12, size=SIZE, person_height=(150, 180), seed=1)


@pytest.mark.parametrize("name", ["walk.mp4", "walk.avi"])
def test_frames_read_back_with_count_and_size(tmp_path, name):
    truth = write_pedestrian_video(tmp_path / name, [0, 1], fps=10, **SMALL)
    frames = read_frames(tmp_path / name)
    assert len(frames) == len(truth) == SMALL["frames"]
    assert all(frame.shape == SIZE + (3,) for frame in frames)
    assert cv2.VideoCapture(str(tmp_path / name)).get(cv2.CAP_PROP_FPS) == pytest.approx(10)
    assert os.listdir(tmp_path) == [name]  # no temporary file left


def test_ground_truth_boxes_lie_in_the_frame_and_everybody_crosses(tmp_path):
    truth = write_pedestrian_video(tmp_path / "walk.mp4", [0, 1, 2], **dict(SMALL, frames=30))
    seen = {0: [], 1: [], 2: []}
    for entries in truth:
        for entry in entries:
            x, y, w, h = entry["box"]
            assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= SIZE[1] and y + h <= SIZE[0]
            assert 0.0 < entry["visible"] <= 1.0 and 0.0 <= entry["occluded"] <= 1.0
            seen[entry["person"]].append(entry)
    for entries in seen.values():
        assert entries[0]["visible"] < 1.0  # enters at a side
        assert any(e["visible"] == 1.0 for e in entries)  # is fully in view for a while
    assert seen[0][-1]["visible"] < 1.0 and 0 not in [e["person"] for e in truth[-1]]  # and has left
    # People 0 and 2 walk right, person 1 left: they cross.
    centre = lambda e: e["box"][0] + e["box"][2] / 2  # noqa: E731
    assert centre(seen[0][-1]) > centre(seen[0][0]) and centre(seen[1][-1]) < centre(seen[1][0])


def test_boxes_enclose_the_changed_pixels(tmp_path):
    """One person: frame 0 is the empty scene, the box must frame what changed since."""
    path = tmp_path / "walk.avi"
    # Colours far from the mid-grey street, so that every body part shows in the difference.
    person = dataclasses.replace(identity_appearance(3, seed=0), hair_color=(20, 20, 20), shoes_color=(240, 240, 240),
                                 lower_color=(20, 20, 20), lower_style="trousers")
    truth = write_pedestrian_video(path, [person], **SMALL)
    frames = read_frames(path)
    assert truth[0] == []
    checked = 0
    for entries, frame in zip(truth, frames):
        if not entries or entries[0]["visible"] < 1.0:
            continue
        checked += 1
        changed = np.abs(frame.astype(int) - frames[0].astype(int)).max(axis=2) > 40
        rows, cols = np.nonzero(changed)
        x, y, w, h = entries[0]["box"]
        assert abs(cols.min() - x) <= 3 and abs(cols.max() + 1 - (x + w)) <= 3
        assert abs(rows.min() - y) <= 3 and abs(rows.max() + 1 - (y + h)) <= 3
    assert checked >= 3


def test_same_seed_same_truth(tmp_path):
    first = write_pedestrian_video(tmp_path / "a.mp4", [4, 5], **SMALL)
    assert first == write_pedestrian_video(tmp_path / "b.mp4", [4, 5], **SMALL)
    assert first != write_pedestrian_video(tmp_path / "c.mp4", [4, 5], **dict(SMALL, seed=2))


def test_hog_people_detector_finds_the_rendered_people(tmp_path):
    """The edge demo's default detector must see the people: most frames, each person."""
    path = tmp_path / "walk.mp4"
    truth = write_pedestrian_video(path, [2, 3], frames=40, seed=1)
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    counted, found = np.zeros(2), np.zeros(2)
    for index, (entries, frame) in enumerate(zip(truth, read_frames(path))):
        entries = [e for e in entries if e["visible"] == 1.0 and e["occluded"] < 0.3]
        if index % 3 or not entries:  # every third frame keeps the test short
            continue
        rects, _ = hog.detectMultiScale(frame, winStride=(8, 8), scale=1.05)
        for entry in entries:
            x, y, w, h = entry["box"]
            counted[entry["person"]] += 1
            # A HOG window frames a person with margins: its centre lies on the body.
            found[entry["person"]] += any(
                x <= rx + rw / 2 <= x + w and y <= ry + rh / 2 <= y + h and 0.9 * h <= rh <= 2.0 * h
                for rx, ry, rw, rh in rects
            )
    assert counted.min() >= 4
    assert np.all(found / counted >= 0.6), (found, counted)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(people=[]), ValueError, "people must name at least one person"),
        (dict(people=["bob"]), TypeError, "people must hold Appearance objects or integer ids, got 'bob'"),
        (dict(people=[1], frames=0), ValueError, "frames must be >= 1 and fps > 0"),
        (dict(people=[1], person_height=(100, 470)), ValueError, r"person_height \(100, 470\) must be increasing"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        write_pedestrian_video(tmp_path / "walk.mp4", **kwargs)
    assert os.listdir(tmp_path) == []


def test_unknown_container(tmp_path):
    with pytest.raises(ValueError, match=r"video path .*walk\.mkv must end with one of \['\.avi', '\.mp4'\]"):
        write_pedestrian_video(tmp_path / "walk.mkv", [1], frames=2)
    assert os.listdir(tmp_path) == []
