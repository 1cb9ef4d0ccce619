"""Gives each track a gallery identity, and enrols the people nobody has seen before.

A new track is matched against the gallery on each of its first `confirm_hits`
frames (votes); then it takes the identity most votes agree on (at least half),
or, if the votes do not agree, it is enrolled as a new identity. Deciding once
per track, after a few frames, means a flickering false detection enrols
nobody and a person is never enrolled again on every frame.

After that the track is re-checked every `check_every` frames; it switches
identity only when `switch_votes` of its last five checks name the same other
identity (hysteresis). A track whose latest check confirmed its identity adds
its current crop to that identity every `sample_every` frames, so the gallery
learns new views; the gallery caps samples per identity.

An identity is never given to two people in view at once: identities held by
other tracks detected in the same frame are excluded from matching.

Example:

>>> identifier = Identifier(matcher, gallery, tracker)
>>> with gallery.transaction():
...     events = identifier.update(tracks, features, crops, frame_index=12)
>>> events[0]["event"], events[0]["identity"]
('new_identity', 4)
"""

import collections

import cv2

from .reid_models import take


def encode_thumbnail(crop_rgb, quality=85):
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(crop_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return jpeg.tobytes() if ok else None


def _one(query):
    """A one-row feature dict without its batch axis, as the gallery stores a sample."""
    return {name: value[0] for name, value in query.items()}


class Identifier:
    """Track -> identity decisions, written to the gallery.

    Args:
        matcher: `Matcher` over the gallery.
        gallery: `Gallery` (writes happen inside the caller's transaction).
        tracker: `Tracker`, to end a stale track when its person reappears.
        confirm_hits: frames a new track is matched before its identity is decided.
        check_every: frames between re-checks of a decided track.
        switch_votes: re-checks out of the last five needed to switch identity.
        sample_every: frames between samples a track adds to its identity.
    """

    def __init__(self, matcher, gallery, tracker, confirm_hits=3, check_every=5, switch_votes=4, sample_every=10):
        if confirm_hits < 1 or check_every < 1 or sample_every < 1:
            raise ValueError("confirm_hits, check_every and sample_every must be >= 1")
        if not 1 <= switch_votes <= 5:
            raise ValueError(f"switch_votes must be between 1 and 5, got {switch_votes}")
        self.matcher = matcher
        self.gallery = gallery
        self.tracker = tracker
        self.confirm_hits = int(confirm_hits)
        self.check_every = int(check_every)
        self.switch_votes = int(switch_votes)
        self.sample_every = int(sample_every)
        self.created = 0  # identities enrolled by this identifier

    def update(self, tracks, features, crops, frame_index, now):
        """Decides identities for the tracks detected in this frame (one per detection).

        Returns one event dict per detection: event ("new_identity", "identified"
        or "seen"), track, identity (None while undecided), score, detection index.
        """
        for track in tracks:
            if track.identity is not None and not self.gallery.has_identity(track.identity):
                # Forgotten by `forget` while the track was in view: decide afresh.
                track.identity, track.score = None, None
                track.recent.clear()
        # Decided tracks first, so that they hold their identities before new tracks are matched.
        order = sorted(range(len(tracks)), key=lambda i: tracks[i].identity is None)
        events = [None] * len(tracks)
        for index in order:
            track = tracks[index]
            held = {t.identity for t in tracks if t is not track and t.identity is not None}
            query = take(features, [index])
            if track.identity is None:
                event = self._decide(track, query, crops[index], held, frame_index, now)
            else:
                event = self._recheck(track, query, crops[index], held, frame_index, now)
            events[index] = {"event": event, "track": track.id, "identity": track.identity, "score": track.score,
                             "detection": index}
        return events

    def _decide(self, track, query, crop, held, frame_index, now):
        result = self.matcher.match(query, exclude=held)
        track.votes.append(result.identity)
        track.score = result.score
        track.last_check = frame_index
        if len(track.votes) < self.confirm_hits:
            return "seen"
        counts = collections.Counter(vote for vote in track.votes if vote is not None)
        track.votes.clear()
        if counts:
            winner, count = counts.most_common(1)[0]
            if 2 * count >= self.confirm_hits and winner not in held:
                self._claim(track, winner, frame_index, now)
                return "identified"
        track.identity = self.gallery.create_identity(now=now)
        track.score = None  # enrolled, not matched
        self.gallery.add_sample(track.identity, _one(query), thumbnail=encode_thumbnail(crop), now=now)
        track.last_sample = frame_index
        self.created += 1
        return "new_identity"

    def _claim(self, track, identity, frame_index, now):
        # A track still coasting with this identity lost its person to this track.
        for other in list(self.tracker.tracks):
            if other is not track and other.identity == identity:
                self.tracker.drop(other)
        track.identity = identity
        track.recent.clear()
        track.last_sample = frame_index
        self.gallery.touch(identity, now)

    def _recheck(self, track, query, crop, held, frame_index, now):
        event = "seen"
        if frame_index - track.last_check >= self.check_every:
            result = self.matcher.match(query, exclude=held)
            track.last_check = frame_index
            track.recent.append(result.identity)
            if result.identity == track.identity:
                track.score = result.score
            others = collections.Counter(v for v in track.recent if v is not None and v != track.identity)
            if others:
                identity, count = others.most_common(1)[0]
                if count >= self.switch_votes:
                    self._claim(track, identity, frame_index, now)
                    track.score = result.score if result.identity == identity else None
                    event = "identified"
        confirmed = bool(track.recent) and track.recent[-1] == track.identity
        if event == "seen" and confirmed and frame_index - track.last_sample >= self.sample_every:
            self.gallery.add_sample(track.identity, _one(query), thumbnail=encode_thumbnail(crop), now=now)
            track.last_sample = frame_index
        return event
