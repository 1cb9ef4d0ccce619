"""Motion regions for a fixed camera, and HOG searching only inside them."""

import cv2
import numpy as np
import pytest

from keras_msreid.edge_demo import cli
from keras_msreid.edge_demo.cli import PROFILES
from keras_msreid.edge_demo.detectors import HOG_PERSON_BOX, HOGDetector
from keras_msreid.edge_demo.motion import MotionRegions, merge_overlapping
from keras_msreid.edge_demo.tracker import iou
from keras_msreid.synthetic import identity_appearance, write_pedestrian_video
from conftest import read_frames


def scene(rng, size=(240, 320)):
    return rng.integers(60, 120, size=size + (3,), dtype=np.uint8)


def test_regions_follow_what_moves_and_vanish_when_it_stops():
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur(scene(rng), (5, 5), 0)
    motion = MotionRegions(margin=0.0)
    first = motion(background)
    assert first == [(0, 0, 320, 240)] or first == []  # before it has learnt anything
    for _ in range(30):
        motion(background)
    assert motion(background) == []
    for step in range(12):
        frame = background.copy()
        x = 40 + 12 * step
        cv2.rectangle(frame, (x, 60), (x + 30, 150), (250, 250, 250), -1)
        regions = motion(frame)
    assert len(regions) == 1
    rx, ry, rw, rh = regions[0]
    assert rx <= x + 2 and ry <= 62 and rx + rw >= x + 28 and ry + rh >= 148  # the whole object
    assert rw <= 30 + 12 * 3 and rh <= 90 + 20  # and not much more
    grown = MotionRegions(margin=0.5)
    for _ in range(30):
        grown(background)
    grown(frame)
    assert grown(frame)[0][2] > rw  # the margin widens the region


def test_merge_overlapping_joins_chains_and_keeps_apart_the_rest():
    boxes = [(0, 0, 10, 10), (8, 8, 20, 20), (18, 0, 30, 9), (100, 100, 110, 110)]
    assert sorted(merge_overlapping(boxes)) == [(0, 0, 30, 20), (100, 100, 110, 110)]
    assert merge_overlapping([]) == []


@pytest.mark.parametrize("bad", [dict(scale=0), dict(scale=1.5), dict(margin=-0.1)])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError):
        MotionRegions(**bad)


def test_hog_inside_motion_regions_finds_what_the_whole_frame_search_finds(tmp_path):
    path = str(tmp_path / "walk.mp4")
    write_pedestrian_video(path, [identity_appearance(p, 0) for p in (3, 8)], frames=40, size=(240, 320),
                           person_height=(130, 150), seed=0)
    frames = read_frames(path)
    whole, gated = HOGDetector(), HOGDetector(motion=MotionRegions())
    found_whole = found_both = 0
    for index, frame in enumerate(frames):
        full, inside = whole(frame), gated(frame)
        if index < 5:
            continue  # the background model is still learning
        found_whole += len(full)
        found_both += sum(any(iou(a.box, b.box) > 0.8 for b in inside) for a in full)
    assert found_whole >= 30
    assert found_both >= 0.9 * found_whole


def test_hog_reports_the_person_inside_its_window():
    detector = HOGDetector(min_score=0.0)
    rng = np.random.default_rng(1)
    frame = scene(rng, (256, 256))
    windows = detector._search(frame, (0, 0, 256, 256))[0]
    for detection in detector(frame):
        x, y, w, h = detection.box
        assert any(abs(x - (wx + HOG_PERSON_BOX[0] * ww)) <= 1 and abs(h - HOG_PERSON_BOX[3] * wh) <= 1
                   for wx, wy, ww, wh in windows)


@pytest.mark.parametrize("extra, expected", [
    ([], dict(detect_resize=1.0, hog_scale=1.05, min_score=0.5, motion=False)),
    (["--profile", "pi"], PROFILES["pi"]),
    (["--profile", "pi", "--hog-scale", "1.05"], dict(PROFILES["pi"], hog_scale=1.05)),  # a flag given wins
    (["--motion"], dict(detect_resize=1.0, hog_scale=1.05, min_score=0.5, motion=True)),
    (["--profile", "pi", "--detector", "ssd.tflite"], dict(PROFILES["pi"], motion=False)),
])
def test_profile_presets_detection_and_flags_given_win(extra, expected):
    args = cli.build_parser().parse_args(["run", "--model-dir", "m", "--source", "v.mp4", *extra])
    assert cli._profile_settings(args) == expected
