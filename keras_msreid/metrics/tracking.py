"""Tracking and identity scores of a video's people against ground truth (MOT Challenge files).

Ground truth and results are MOT Challenge text files, one box per line:
`frame,id,left,top,width,height[,conf,...]` with frames counted from 1 (in memory
they count from 0, as the edge demo's event log does). A ground-truth line whose
7th field is 0 is ignored, as in MOT Challenge. Scores come from `motmetrics`
(IDF1, identity switches, MOTA, recall, precision), on the annotated frames only,
so a ground truth made for every 10th frame scores every 10th frame.

Example:

>>> truth = read_mot_file("vtest.gt.txt")
>>> result = read_event_log("events.jsonl")
>>> scores = score_tracks(truth, result)
>>> scores["idf1"], scores["identities"], scores["people"]
(0.61, 14, 12)
"""

import csv
import io
import json
import math

import numpy as np

from keras_msreid.errors import UserError
from keras_msreid.utils.atomic import atomic_write_text

SCORES = ("idf1", "idp", "idr", "mota", "motp", "num_switches", "num_fragmentations", "recall", "precision",
          "num_misses", "num_false_positives", "num_unique_objects")


def read_mot_file(path):
    """`{frame (from 0): [(id, (x, y, w, h)), ...]}` from a MOT Challenge file; ignored lines left out."""
    frames = {}
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            for number, row in enumerate(csv.reader(handle), start=1):
                if not row or not "".join(row).strip():
                    continue
                try:
                    if len(row) < 6:
                        raise ValueError(row)
                    frame, identity = int(float(row[0])), int(float(row[1]))
                    box = tuple(float(value) for value in row[2:6])
                    flag = float(row[6]) if len(row) > 6 else 1.0
                except ValueError:
                    raise UserError(f"{path}:{number}: expected frame,id,left,top,width,height[,...], got "
                                    f"{','.join(row)!r}") from None
                if frame < 1 or not all(math.isfinite(v) for v in box) or min(box[2:]) <= 0:
                    raise UserError(f"{path}:{number}: frame must be >= 1 and the box finite with positive size, "
                                    f"got {','.join(row)!r}")
                if flag != 0:
                    frames.setdefault(frame - 1, []).append((identity, box))
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}") from None
    return frames


def write_mot_file(path, frames):
    """Writes `{frame (from 0): [(id, box), ...]}` as a MOT Challenge ground-truth file, atomically."""
    out = io.StringIO()
    for frame in sorted(frames):
        for identity, box in sorted(frames[frame], key=lambda item: item[0]):
            values = ",".join(f"{v:g}" for v in box)
            out.write(f"{frame + 1},{identity},{values},1,1,1\n")
    atomic_write_text(path, out.getvalue())


def read_event_log(path):
    """`{frame: [(id, box), ...]}` from the edge demo's JSON-lines event log.

    The id is the gallery identity; a person still undecided (identity null) gets
    its track's id, written `track:N`, so its box still counts as a detection.
    A last line cut by a crash is skipped.
    """
    frames = {}
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as error:
        raise UserError(f"cannot read event log {path}: {error.strerror}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
            box = tuple(float(v) for v in event["box"])
            frame = int(event["frame"])
            identity = event["identity"] if event["identity"] is not None else f"track:{event['track']}"
        except (ValueError, KeyError, TypeError):
            if number == len(lines):
                continue
            raise UserError(f"{path}:{number}: not an event of the edge demo's log: {line[:80]!r}") from None
        frames.setdefault(frame, []).append((identity, box))
    return frames


def iou_distances(truth_boxes, result_boxes, min_iou=0.5):
    """`1 - IoU` between every truth and result box, NaN (no match allowed) below `min_iou`."""
    truth = np.asarray(truth_boxes, np.float64).reshape(-1, 4)
    result = np.asarray(result_boxes, np.float64).reshape(-1, 4)
    left = np.maximum(truth[:, None, 0], result[None, :, 0])
    top = np.maximum(truth[:, None, 1], result[None, :, 1])
    right = np.minimum(truth[:, None, 0] + truth[:, None, 2], result[None, :, 0] + result[None, :, 2])
    bottom = np.minimum(truth[:, None, 1] + truth[:, None, 3], result[None, :, 1] + result[None, :, 3])
    inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    union = (truth[:, 2] * truth[:, 3])[:, None] + (result[:, 2] * result[:, 3])[None, :] - inter
    iou = inter / np.maximum(union, 1e-12)
    return np.where(iou >= min_iou, 1.0 - iou, np.nan)


def score_tracks(truth, result, frames=None, min_iou=0.5):
    """Scores `result` against `truth` (both `{frame: [(id, box), ...]}`) on `frames`.

    `frames` defaults to the frames the ground truth annotates. A result box
    matches a truth box with IoU >= `min_iou`. Returns a dict of `SCORES` (rates
    as fractions, counts as ints) with `people` (distinct truth ids),
    `identities` (distinct result ids on those frames) and `frames`.
    """
    import motmetrics  # pandas and scipy: only for scoring, not needed to run the demo

    frames = sorted(truth) if frames is None else sorted(frames)
    if not frames:
        raise UserError("no annotated frames to score")
    accumulator = motmetrics.MOTAccumulator(auto_id=False)
    # motmetrics wants numeric ids; results name theirs freely ("track:3").
    truth_ids, result_ids = {}, {}
    for frame in frames:
        truth_here, result_here = truth.get(frame, []), result.get(frame, [])
        accumulator.update([truth_ids.setdefault(identity, len(truth_ids)) for identity, _ in truth_here],
                           [result_ids.setdefault(identity, len(result_ids)) for identity, _ in result_here],
                           iou_distances([box for _, box in truth_here], [box for _, box in result_here], min_iou),
                           frameid=frame)
    summary = motmetrics.metrics.create().compute(accumulator, metrics=list(SCORES), name="video")
    scores = {}
    for name in SCORES:
        value = summary[name].iloc[0]
        scores[name] = int(value) if name.startswith("num_") else float(value)
    scores.update(people=len(truth_ids), identities=len(result_ids), frames=len(frames))
    return scores
