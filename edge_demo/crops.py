"""Person crops for the extractor: cut a box from a BGR frame, resize, make it RGB uint8.

Example:

>>> crops = crop_people(frame, [(120, 40, 60, 150)], image_size=(160, 64))
>>> crops.shape, crops.dtype
((1, 160, 64, 3), dtype('uint8'))
"""

import cv2
import numpy as np


def clip_box(box, frame_shape):
    """(x, y, w, h) clipped to the frame; None when nothing of it is inside."""
    x, y, w, h = (int(round(v)) for v in box)
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(frame_shape[1], x + w), min(frame_shape[0], y + h)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1 - x0, y1 - y0


def crop_person(frame, box, image_size):
    """One (H, W, 3) uint8 RGB crop of `box` = (x, y, w, h), clipped to the BGR `frame`."""
    clipped = clip_box(box, frame.shape)
    if clipped is None:
        raise ValueError(f"box {tuple(box)} lies outside the {frame.shape[1]}x{frame.shape[0]} frame")
    x, y, w, h = clipped
    patch = frame[y:y + h, x:x + w]
    height, width = image_size
    # Area averaging when shrinking avoids aliasing stripes on clothes; bilinear when enlarging.
    interpolation = cv2.INTER_AREA if h >= height and w >= width else cv2.INTER_LINEAR
    resized = cv2.resize(patch, (width, height), interpolation=interpolation)
    return cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)


def crop_people(frame, boxes, image_size):
    """(N, H, W, 3) uint8 RGB crops of every box."""
    crops = np.empty((len(boxes),) + tuple(image_size) + (3,), np.uint8)
    for index, box in enumerate(boxes):
        crops[index] = crop_person(frame, box, image_size)
    return crops
