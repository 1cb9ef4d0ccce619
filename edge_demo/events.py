"""The JSON-lines event log: one line per person per frame.

Fields: `time` (Unix seconds, UTC), `frame` (index from 0), `track` (tracker id),
`identity` (gallery id, null while undecided), `name` (null unless named),
`score` (latest match score, null before any match), `box` ([x, y, w, h] in
frame pixels) and `event`: "new_identity" (enrolled now), "identified" (matched
to a known identity, or switched to one) or "seen".

The log is appended to (a service restarted at boot continues it), and each
frame's lines go out in one write followed by a flush, so a crash cuts the log
at a line boundary or, at worst, leaves one partial last line.

Example:

>>> with EventLog("events.jsonl") as log:
...     log.write_frame([{"time": 1.7e9, "frame": 0, "track": 1, "identity": 4, "name": None,
...                       "score": 0.91, "box": [10, 20, 64, 128], "event": "seen"}])
"""

import json
import os

FIELDS = ("time", "frame", "track", "identity", "name", "score", "box", "event")


class EventLog:
    """Appends event dicts (the keys in `FIELDS`) as JSON lines."""

    def __init__(self, path):
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"folder {directory} of event log {path} does not exist")
        if os.path.isdir(path):
            raise ValueError(f"event log {path} is a folder")
        self.path = path
        try:
            self.file = open(path, "a", encoding="utf-8")
        except OSError as error:
            raise OSError(f"cannot append to event log {path}: {error.strerror}") from None

    def write_frame(self, events):
        if not events:
            return
        lines = "".join(json.dumps({key: event[key] for key in FIELDS}, separators=(",", ":")) + "\n"
                        for event in events)
        self.file.write(lines)
        self.file.flush()

    def close(self):
        self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
