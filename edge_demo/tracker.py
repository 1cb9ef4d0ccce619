"""Short-term tracking: links each frame's detections to the people seen just before.

A track predicts its box with a constant velocity; a detection can continue a
track only where their boxes overlap (IoU of at least `min_iou`) and their
embeddings agree (cosine of at least `min_similarity`: one person leaving where
another enters is two tracks); among those the pairing maximises
`iou_weight * IoU + (1 - iou_weight) * cosine` (greedily, best pair first). That
keeps two people apart when they cross. A track not seen for `max_missed` frames ends; the gallery, not the
tracker, recognises a person who comes back later.

A track also carries what the identifier decides about it (identity, votes).

Example:

>>> tracker = Tracker()
>>> tracks = tracker.update([(100, 50, 40, 120)], embeddings, frame_index=0)
>>> tracks[0].id, tracks[0].hits
(1, 1)
"""

import collections
import dataclasses

import numpy as np


def iou(a, b):
    """Intersection over union of two (x, y, w, h) boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    intersection = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - intersection
    return intersection / union if union > 0 else 0.0


@dataclasses.dataclass(eq=False)
class Track:
    id: int
    box: tuple  # (x, y, w, h) of the latest detection
    embedding: np.ndarray  # running mean of the unit embeddings, renormalised
    last_frame: int
    hits: int = 1
    velocity: tuple = (0.0, 0.0)  # box centre motion in pixels per frame
    # Set by the identifier:
    identity: object = None  # gallery identity id, None while undecided
    score: object = None  # latest match score
    votes: list = dataclasses.field(default_factory=list)  # match results while undecided
    recent: collections.deque = dataclasses.field(default_factory=lambda: collections.deque(maxlen=5))
    last_check: int = -1  # frame of the latest gallery match
    last_sample: int = -1  # frame of the latest sample added to the gallery

    def missed(self, frame_index):
        return frame_index - self.last_frame

    def predicted_box(self, frame_index):
        steps = frame_index - self.last_frame
        x, y, w, h = self.box
        return x + self.velocity[0] * steps, y + self.velocity[1] * steps, w, h


class Tracker:
    """IoU + appearance tracker.

    Args:
        min_iou: smallest overlap between a track's predicted box and a detection.
        min_similarity: smallest cosine between a track's and a detection's embeddings.
        iou_weight: weight of the overlap against the embedding similarity.
        max_missed: frames a track survives without a detection.
        smoothing: weight of the past in the running embedding and velocity.
    """

    def __init__(self, min_iou=0.1, min_similarity=0.5, iou_weight=0.5, max_missed=10, smoothing=0.7):
        self.min_iou = float(min_iou)
        self.min_similarity = float(min_similarity)
        self.iou_weight = float(iou_weight)
        self.max_missed = int(max_missed)
        self.smoothing = float(smoothing)
        self.tracks = []
        self._next_id = 1

    def update(self, boxes, embeddings, frame_index):
        """Links detections to tracks; returns the track of each detection, in order."""
        self.tracks = [t for t in self.tracks if t.missed(frame_index) <= self.max_missed]
        pairs = []
        for t_index, track in enumerate(self.tracks):
            predicted = track.predicted_box(frame_index)
            for d_index, box in enumerate(boxes):
                overlap = iou(predicted, box)
                if overlap < self.min_iou:
                    continue
                similarity = float(track.embedding @ embeddings[d_index])
                if similarity >= self.min_similarity:
                    pairs.append((self.iou_weight * overlap + (1 - self.iou_weight) * similarity, t_index, d_index))
        assigned = [None] * len(boxes)
        used_tracks = set()
        for _, t_index, d_index in sorted(pairs, key=lambda pair: -pair[0]):
            if t_index in used_tracks or assigned[d_index] is not None:
                continue
            used_tracks.add(t_index)
            assigned[d_index] = self.tracks[t_index]
            self._continue(self.tracks[t_index], boxes[d_index], embeddings[d_index], frame_index)
        for d_index, box in enumerate(boxes):
            if assigned[d_index] is None:
                track = Track(self._next_id, tuple(float(v) for v in box), np.asarray(embeddings[d_index], np.float32),
                              frame_index)
                self._next_id += 1
                self.tracks.append(track)
                assigned[d_index] = track
        return assigned

    def _continue(self, track, box, embedding, frame_index):
        steps = frame_index - track.last_frame
        old_x, old_y = track.box[0] + track.box[2] / 2, track.box[1] + track.box[3] / 2
        new_x, new_y = box[0] + box[2] / 2, box[1] + box[3] / 2
        a = self.smoothing
        track.velocity = (a * track.velocity[0] + (1 - a) * (new_x - old_x) / steps,
                          a * track.velocity[1] + (1 - a) * (new_y - old_y) / steps)
        mean = a * track.embedding + (1 - a) * np.asarray(embedding, np.float32)
        track.embedding = mean / max(float(np.linalg.norm(mean)), 1e-12)
        track.box = tuple(float(v) for v in box)
        track.last_frame = frame_index
        track.hits += 1

    def drop(self, track):
        """Ends a track (another track turned out to be the same person)."""
        self.tracks = [t for t in self.tracks if t is not track]
