"""MOT Challenge files, the edge demo's event log, and IDF1 / MOTA from motmetrics against slow references."""

import itertools
import json

import numpy as np
import pytest

from keras_msreid.edge_demo.tracker import iou
from keras_msreid.errors import UserError
from keras_msreid.metrics.tracking import (iou_distances, read_event_log, read_mot_file, score_tracks,
                                           write_mot_file)


def reference_idf1(truth, result, min_iou=0.5):
    """IDF1 by trying every one-to-one map of truth ids to result ids (Ristani et al. 2016)."""
    truth_ids = sorted({i for boxes in truth.values() for i, _ in boxes})
    result_ids = sorted({i for boxes in result.values() for i, _ in boxes}, key=str)
    overlap = {}
    for frame, boxes in truth.items():
        for t, t_box in boxes:
            for r, r_box in result.get(frame, []):
                if iou(t_box, r_box) >= min_iou:
                    overlap[t, r] = overlap.get((t, r), 0) + 1
    best = 0
    padded = result_ids + [None] * len(truth_ids)
    for chosen in itertools.permutations(padded, len(truth_ids)):
        best = max(best, sum(overlap.get((t, r), 0) for t, r in zip(truth_ids, chosen) if r is not None))
    n_truth = sum(len(b) for b in truth.values())
    n_result = sum(len(b) for f, b in result.items() if f in truth)
    return 2 * best / (n_truth + n_result)


def random_scene(rng, frames=12, people=3):
    """People walking; the result boxes are jittered, sometimes missing, with swapped or extra ids."""
    truth, result = {}, {}
    starts = rng.uniform(0, 200, size=(people, 2))
    for frame in range(frames):
        truth[frame], result[frame] = [], []
        for person in range(people):
            box = (starts[person, 0] + 6 * frame, starts[person, 1], 30.0, 80.0)
            truth[frame].append((person, box))
            if rng.random() < 0.15:
                continue  # a miss
            identity = f"id{person}" if frame < frames // 2 or person else f"id{rng.integers(0, 2)}"
            jitter = rng.normal(0, 4, size=4) * np.array([1, 1, 0.5, 0.5])
            result[frame].append((identity, tuple(np.array(box) + jitter)))
        if rng.random() < 0.3:
            result[frame].append(("stray", (500.0, 500.0, 30.0, 80.0)))
    return truth, result


@pytest.mark.parametrize("seed", range(6))
def test_idf1_matches_the_brute_force_reference(seed):
    truth, result = random_scene(np.random.default_rng(seed))
    scores = score_tracks(truth, result)
    assert scores["idf1"] == pytest.approx(reference_idf1(truth, result), abs=1e-9)
    matched = sum(1 for f in truth for t, tb in truth[f] if any(iou(tb, rb) >= 0.5 for _, rb in result[f]))
    assert scores["recall"] == pytest.approx(matched / sum(len(b) for b in truth.values()), abs=1e-9)
    assert scores["people"] == 3 and scores["frames"] == 12


def test_a_perfect_result_and_a_swap():
    truth = {0: [(1, (0, 0, 10, 20)), (2, (50, 0, 10, 20))], 1: [(1, (2, 0, 10, 20)), (2, (52, 0, 10, 20))]}
    perfect = {f: [(f"p{i}", box) for i, box in boxes] for f, boxes in truth.items()}
    scores = score_tracks(truth, perfect)
    assert scores["idf1"] == 1.0 and scores["mota"] == 1.0 and scores["num_switches"] == 0
    assert scores["identities"] == 2
    swapped = {0: perfect[0], 1: [("p2", truth[1][0][1]), ("p1", truth[1][1][1])]}
    scores = score_tracks(truth, swapped)
    assert scores["num_switches"] == 2 and scores["idf1"] == 0.5 and scores["recall"] == 1.0


def test_only_annotated_frames_are_scored():
    truth = {0: [(1, (0, 0, 10, 20))], 10: [(1, (20, 0, 10, 20))]}
    result = {frame: [("a", (2 * frame, 0, 10, 20))] for frame in range(11)}
    scores = score_tracks(truth, result)
    assert scores["frames"] == 2 and scores["precision"] == 1.0 and scores["num_false_positives"] == 0
    assert score_tracks(truth, result, frames=[0, 5, 10])["num_false_positives"] == 1
    with pytest.raises(UserError, match="no annotated frames"):
        score_tracks({}, result)


def test_iou_distances_agree_with_the_tracker():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 50, size=(5, 4)) + [0, 0, 5, 5]
    b = rng.uniform(0, 50, size=(4, 4)) + [0, 0, 5, 5]
    distances = iou_distances(a, b, min_iou=0.0)
    expected = np.array([[1 - iou(x, y) for y in b] for x in a])
    np.testing.assert_allclose(distances, expected, atol=1e-12)
    assert np.isnan(iou_distances(a, b, min_iou=1.1)).all()
    assert iou_distances([], b).shape == (0, 4)


def test_mot_file_round_trip_and_ignored_lines(tmp_path):
    frames = {0: [(2, (1.5, 2.0, 30.0, 80.0)), (1, (100.0, 5.0, 20.0, 60.0))], 9: [(1, (104.0, 5.0, 20.0, 60.0))]}
    path = tmp_path / "gt.txt"
    write_mot_file(path, frames)
    assert path.read_text().splitlines()[0] == "1,1,100,5,20,60,1,1,1"
    assert read_mot_file(path) == {0: sorted(frames[0]), 9: frames[9]}
    path.write_text("1,1,0,0,10,20,0,1,1\n2,1,0,0,10,20\n\n")
    assert read_mot_file(path) == {1: [(1, (0.0, 0.0, 10.0, 20.0))]}  # flag 0: ignored, as in MOT Challenge


@pytest.mark.parametrize("line, problem", [("1,1,0,0,10", "expected frame,id"), ("a,1,0,0,10,20", "expected"),
                                           ("0,1,0,0,10,20", "frame must be >= 1"),
                                           ("1,1,0,0,-10,20", "positive size"), ("1,1,nan,0,10,20", "finite")])
def test_bad_mot_lines_name_the_file_and_line(tmp_path, line, problem):
    path = tmp_path / "gt.txt"
    path.write_text("1,1,0,0,10,20\n" + line + "\n")
    with pytest.raises(UserError, match=rf"gt.txt:2: .*{problem}"):
        read_mot_file(path)
    with pytest.raises(UserError, match="cannot read"):
        read_mot_file(tmp_path / "missing.txt")


def test_event_log_undecided_people_keep_their_track(tmp_path):
    events = [dict(frame=0, track=4, identity=None, box=[1, 2, 3, 4]), dict(frame=1, track=4, identity=7, box=[2, 2, 3, 4])]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events) + '{"frame": 2, "tra')  # cut by a crash
    assert read_event_log(path) == {0: [("track:4", (1.0, 2.0, 3.0, 4.0))], 1: [(7, (2.0, 2.0, 3.0, 4.0))]}
    path.write_text("not json\n" + json.dumps(events[0]) + "\n")
    with pytest.raises(UserError, match="events.jsonl:1: not an event"):
        read_event_log(path)
