"""Draws tracked people onto a frame: a box and a label per person, stats in a corner.

Each identity keeps one colour; a person still being identified is drawn grey
with the track number.

Example:

>>> annotate(frame, [{"box": [40, 20, 64, 128], "identity": 3, "name": "Alice", "score": 0.93, "track": 7}],
...          status="6.2 fps")
"""

import cv2
import numpy as np

_UNDECIDED = (160, 160, 160)


def identity_color(identity):
    """A stable, saturated BGR colour for an identity id (golden-angle hues)."""
    hue = int(identity * 137.508) % 180
    pixel = cv2.cvtColor(np.uint8([[[hue, 220, 255]]]), cv2.COLOR_HSV2BGR)[0, 0]
    return tuple(int(c) for c in pixel)


def label(person):
    if person["identity"] is None:
        return f"track {person['track']}?"
    name = person.get("name") or f"id {person['identity']}"
    return name if person.get("score") is None else f"{name} {person['score']:.2f}"


def annotate(frame, people, status=None):
    """Draws in place on the BGR `frame`; `people` are event dicts (box, identity, name, score, track)."""
    for person in people:
        x, y, w, h = (int(v) for v in person["box"])
        color = _UNDECIDED if person["identity"] is None else identity_color(person["identity"])
        cv2.rectangle(frame, (x, y), (x + w, y + h), color, 2)
        text = label(person)
        (tw, th), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        top = max(0, y - th - baseline - 4)
        cv2.rectangle(frame, (x, top), (x + tw + 4, top + th + baseline + 4), color, cv2.FILLED)
        cv2.putText(frame, text, (x + 2, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    if status:
        cv2.putText(frame, status, (8, frame.shape[0] - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(frame, status, (8, frame.shape[0] - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return frame
