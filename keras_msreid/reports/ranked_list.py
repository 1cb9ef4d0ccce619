"""Ranked-list picture: each query beside its top-ranked gallery images.

Every gallery thumbnail gets a green frame when it shows the query's identity and a
red one when it does not, and its score underneath. TensorFlow-free (OpenCV).

Example:

>>> picture = draw_ranked_list(query_paths, gallery_paths, top_indices, top_scores, matches, "ranked.png")
>>> picture.shape      # (rows * row height, columns * column width, 3) BGR
"""

import cv2
import numpy as np

from keras_msreid.reports._image_io import read_thumbnail, write_png

MATCH_COLOR = (40, 170, 40)  # BGR green
MISMATCH_COLOR = (40, 40, 220)  # BGR red
QUERY_COLOR = (160, 160, 160)
FRAME = 4
CAPTION_HEIGHT = 18
GAP = 16


def draw_ranked_list(query_paths, gallery_paths, top_indices, top_scores, matches, path=None, thumb_size=(128, 64)):
    """Draws one row per query: the query, a gap, then its ranked gallery images.

    Args:
        query_paths: image path of each query (Q,).
        gallery_paths: image path of each gallery image.
        top_indices: `(Q, n)` gallery indices, best first.
        top_scores: `(Q, n)` their scores (printed with 3 decimals).
        matches: `(Q, n)` bool, whether each shows the query's identity.
        path: where to write the PNG (atomically); None only returns the picture.
        thumb_size: `(height, width)` of every thumbnail.

    Returns:
        The picture, BGR uint8.
    """
    top_indices = np.asarray(top_indices)
    top_scores = np.asarray(top_scores)
    matches = np.asarray(matches, bool)
    if top_indices.ndim != 2 or top_indices.shape != top_scores.shape or top_indices.shape != matches.shape:
        raise ValueError(
            "top_indices, top_scores and matches must be (queries, n) arrays of one shape, got "
            f"{top_indices.shape}, {top_scores.shape}, {matches.shape}"
        )
    if len(query_paths) != top_indices.shape[0] or top_indices.shape[0] == 0:
        raise ValueError(f"got {len(query_paths)} query paths for {top_indices.shape[0]} ranked rows")
    num_rows, num_ranked = top_indices.shape
    height, width = thumb_size
    cell_w, cell_h = width + 2 * FRAME, height + 2 * FRAME + CAPTION_HEIGHT
    canvas = np.full((num_rows * cell_h, (num_ranked + 1) * cell_w + GAP, 3), 255, np.uint8)
    for row in range(num_rows):
        top = row * cell_h
        _paste(canvas, read_thumbnail(query_paths[row], thumb_size), top, 0, QUERY_COLOR, "query")
        for rank in range(num_ranked):
            color = MATCH_COLOR if matches[row, rank] else MISMATCH_COLOR
            left = GAP + (rank + 1) * cell_w
            thumb = read_thumbnail(gallery_paths[top_indices[row, rank]], thumb_size)
            _paste(canvas, thumb, top, left, color, f"{top_scores[row, rank]:.3f}")
    if path is not None:
        write_png(path, canvas)
    return canvas


def _paste(canvas, thumb, top, left, color, caption):
    height, width = thumb.shape[:2]
    cv2.rectangle(canvas, (left, top), (left + width + 2 * FRAME - 1, top + height + 2 * FRAME - 1), color, -1)
    canvas[top + FRAME : top + FRAME + height, left + FRAME : left + FRAME + width] = thumb
    cv2.putText(canvas, caption, (left + 2, top + height + 2 * FRAME + CAPTION_HEIGHT - 5),
                cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
