"""Tracker, two-stage matcher and identifier, with a deterministic stand-in for the models.

The stand-in's "scorer" is the dot product of the crops' `code` features mapped
to [0, 1]; the models themselves are tested in test_edge_demo.py.
"""

import numpy as np
import pytest

from keras_msreid.edge_demo.gallery import Gallery
from keras_msreid.edge_demo.identifier import Identifier
from keras_msreid.edge_demo.matcher import Matcher, shortlist_identities
from keras_msreid.edge_demo.tracker import Tracker, iou


class DotModels:
    """Scores pairs by (1 + code_a . code_b) / 2 and records the rows of each call's two sides."""

    feature_names = ["code"]
    match_threshold = 0.9
    scorer = "dot"

    def __init__(self):
        self.pairs_scored = []

    def score(self, features_a, features_b):
        self.pairs_scored.append((len(features_a["code"]), len(features_b["code"])))
        return (1 + np.sum(features_a["code"] * features_b["code"], axis=1)) / 2


def unit(vector):
    vector = np.asarray(vector, np.float32)
    return vector / np.linalg.norm(vector)


def person_features(codes, embeddings=None):
    codes = np.stack([unit(c) for c in codes])
    return {"embedding": codes if embeddings is None else np.stack([unit(e) for e in embeddings]), "code": codes}


def test_iou_against_hand_computed_values():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (10, 0, 10, 10)) == 0.0


def test_tracker_follows_two_people_crossing():
    tracker = Tracker(min_iou=0.1, min_similarity=0.5)
    red, blue = unit([1, 0, 0]), unit([0, 1, 0])
    ids = {"red": set(), "blue": set()}
    for frame in range(20):
        # Red walks right, blue walks left; they overlap around frame 10.
        boxes = [(10 + 10 * frame, 50, 40, 100), (210 - 10 * frame, 50, 40, 100)]
        tracks = tracker.update(boxes, np.stack([red, blue]), frame)
        ids["red"].add(tracks[0].id)
        ids["blue"].add(tracks[1].id)
    assert len(ids["red"]) == 1 and len(ids["blue"]) == 1 and ids["red"] != ids["blue"]


def test_tracker_does_not_continue_a_track_with_someone_else():
    tracker = Tracker(min_similarity=0.5)
    first = tracker.update([(100, 50, 40, 100)], np.stack([unit([1, 0])]), 0)[0]
    # Same place, next frame, but another appearance: a new track.
    second = tracker.update([(102, 50, 40, 100)], np.stack([unit([0, 1])]), 1)[0]
    assert second.id != first.id
    # A track survives max_missed frames without detections, then ends.
    tracker = Tracker(max_missed=2)
    track = tracker.update([(0, 0, 10, 10)], np.stack([unit([1, 0])]), 0)[0]
    assert tracker.update([(0, 0, 10, 10)], np.stack([unit([1, 0])]), 2)[0] is track
    assert tracker.update([(0, 0, 10, 10)], np.stack([unit([1, 0])]), 5)[0] is not track


def test_shortlist_takes_best_sample_per_identity():
    similarities = np.array([0.1, 0.9, 0.8, 0.7, 0.95, 0.2])
    identities = np.array([1, 2, 2, 3, 4, 1])
    np.testing.assert_array_equal(shortlist_identities(similarities, identities, 3), [4, 1, 3])
    np.testing.assert_array_equal(shortlist_identities(similarities, identities, 10), [4, 1, 3, 5])


def test_matcher_agrees_with_exhaustive_scoring(tmp_path):
    rng = np.random.default_rng(0)
    gallery = Gallery(tmp_path / "g.sqlite")
    codes = {}
    with gallery.transaction():
        for _ in range(6):
            identity = gallery.create_identity()
            base = rng.normal(size=8)
            for _ in range(3):
                code = unit(base + 0.3 * rng.normal(size=8))
                codes.setdefault(identity, []).append(code)
                gallery.add_sample(identity, {"embedding": code, "code": code})
    models = DotModels()
    # Shortlist as long as the gallery: the result must equal exhaustive scoring.
    matcher = Matcher(models, gallery, shortlist=6)
    for trial in range(10):
        query = person_features([rng.normal(size=8) + 2 * codes[1 + trial % 6][0]])
        result = matcher.match(query)
        exhaustive = {identity: max((1 + code @ query["code"][0]) / 2 for code in samples)
                      for identity, samples in codes.items()}
        best = max(exhaustive, key=exhaustive.get)
        assert result.best_identity == best
        assert result.score == pytest.approx(exhaustive[best], abs=1e-3)
        assert result.identity == (best if exhaustive[best] >= 0.9 else None)
    # The query goes to the scorer once, with every shortlisted sample.
    assert set(models.pairs_scored) == {(1, 6)}
    excluded = matcher.match(query, exclude={result.best_identity})
    assert excluded.best_identity != result.best_identity
    gallery.close()


class Scene:
    """Runs tracker + identifier over scripted frames of coded people."""

    def __init__(self, path, tracker=None, **identifier_options):
        self.gallery = Gallery(path)
        self.tracker = tracker or Tracker()
        self.models = DotModels()
        self.identifier = Identifier(Matcher(self.models, self.gallery), self.gallery, self.tracker,
                                     **identifier_options)
        self.frame = 0

    def step(self, people):
        """people: list of (box, code); returns the events."""
        features = person_features([code for _, code in people])
        tracks = self.tracker.update([box for box, _ in people], features["embedding"], self.frame)
        crops = np.zeros((len(people), 8, 4, 3), np.uint8)
        with self.gallery.transaction():
            events = self.identifier.update(tracks, features, crops, self.frame, now=float(self.frame))
        self.frame += 1
        return events


def test_identifier_enrols_once_then_recognises_after_the_track_ends(tmp_path):
    scene = Scene(tmp_path / "g.sqlite", confirm_hits=3, sample_every=4)
    alice = [1, 0, 0, 0]
    events = [scene.step([((10 * f, 0, 40, 100), alice)]) for f in range(12)]
    kinds = [e[0]["event"] for e in events]
    assert kinds[:3] == ["seen", "seen", "new_identity"]
    assert kinds[3:] == ["seen"] * 9
    identity = events[2][0]["identity"]
    assert {e[0]["identity"] for e in events[2:]} == {identity}
    assert scene.identifier.created == 1
    # Confirmed re-checks add samples of the identity, capped by the gallery.
    assert scene.gallery.identities()[0].samples >= 2
    # Alice leaves and comes back elsewhere: a new track, the same identity.
    scene.frame += 30
    back = [scene.step([((300, 0, 40, 100), alice)]) for _ in range(3)]
    assert back[0][0]["track"] != events[0][0]["track"]
    assert [e[0]["event"] for e in back] == ["seen", "seen", "identified"]
    assert back[2][0]["identity"] == identity and back[2][0]["score"] == pytest.approx(1.0)
    assert scene.identifier.created == 1


def test_two_people_in_view_never_share_an_identity(tmp_path):
    scene = Scene(tmp_path / "g.sqlite", confirm_hits=2)
    alice, twin = [1, 0, 0], [1, 0.05, 0]  # the scorer cannot tell them apart
    for _ in range(3):
        scene.step([((0, 0, 40, 100), alice)])
    events = [scene.step([((0, 0, 40, 100), alice), ((200, 0, 40, 100), twin)]) for _ in range(3)]
    assert events[-1][0]["identity"] != events[-1][1]["identity"]
    assert scene.identifier.created == 2


def test_identity_switches_only_after_enough_rechecks(tmp_path):
    # A tracker without the appearance gate, so that one track can change person.
    scene = Scene(tmp_path / "g.sqlite", tracker=Tracker(min_similarity=-1.0), confirm_hits=1, check_every=1,
                  switch_votes=3, sample_every=1000)
    alice, bob = [1, 0, 0], [0, 1, 0]
    scene.step([((0, 0, 40, 100), bob)])  # bob enrolled, then leaves
    scene.frame += 50
    first = scene.step([((0, 0, 40, 100), alice)])[0]
    assert first["event"] == "new_identity"
    alice_identity = first["identity"]
    # The same track now shows bob (the tracker swapped people).
    events = [scene.step([((0, 0, 40, 100), bob)])[0] for _ in range(4)]
    identities = [e["identity"] for e in events]
    assert identities[:2] == [alice_identity, alice_identity]  # one or two odd checks: no switch
    assert events[2]["event"] == "identified" and identities[2] != alice_identity


def test_a_track_whose_identity_was_forgotten_is_decided_afresh(tmp_path):
    scene = Scene(tmp_path / "g.sqlite", confirm_hits=2)
    alice = [1, 0, 0]
    first = [scene.step([((0, 0, 40, 100), alice)])[0] for _ in range(2)][-1]
    assert first["event"] == "new_identity"
    other = Gallery(tmp_path / "g.sqlite")  # `forget` from another process
    other.forget(first["identity"])
    other.close()
    events = [scene.step([((0, 0, 40, 100), alice)])[0] for _ in range(2)]
    assert events[0]["identity"] is None and events[0]["track"] == first["track"]
    assert events[1]["event"] == "new_identity" and events[1]["identity"] != first["identity"]
