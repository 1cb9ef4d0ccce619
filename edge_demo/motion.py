"""Where a fixed camera's picture moves: the regions worth running a person detector on.

OpenCV's MOG2 background model runs on a reduced grey copy of each frame; its
foreground is cleaned (opening), joined (dilation) and cut into boxes, which are
grown by `margin` (a share of their size, so that a detector sees the whole person
and some context) and merged where they overlap. A still scene gives no regions;
the first frames, before the model has learnt the background, give the whole frame.

Example:

>>> motion = MotionRegions()
>>> [motion(frame) for frame in frames][-1]
[(212, 80, 96, 176)]
"""

import cv2


class MotionRegions:
    """Boxes `(x, y, w, h)` in frame pixels around what moved.

    Args:
        scale: size of the copy the background model runs on (0.5: half width
            and height, a quarter of the work).
        history: frames the background model remembers.
        var_threshold: MOG2's squared Mahalanobis distance for foreground
            (larger: less sensitive).
        min_area: smallest foreground blob kept, in frame pixels.
        margin: each box grows by this share of its width and height on every side.
    """

    def __init__(self, scale=0.5, history=300, var_threshold=25.0, min_area=150.0, margin=0.25):
        if not 0 < scale <= 1:
            raise ValueError(f"scale must be in (0, 1], got {scale}")
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        self.scale = float(scale)
        self.min_area = float(min_area)
        self.margin = float(margin)
        self.subtractor = cv2.createBackgroundSubtractorMOG2(int(history), float(var_threshold), detectShadows=False)
        self.open_kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self.join_kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 7))

    def __call__(self, frame):
        height, width = frame.shape[:2]
        small = cv2.resize(frame, None, fx=self.scale, fy=self.scale, interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        mask = self.subtractor.apply(grey)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self.open_kernel)
        mask = cv2.dilate(mask, self.join_kernel)
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        boxes = []
        for x, y, w, h, area in stats[1:count]:
            if area < self.min_area * self.scale * self.scale:
                continue
            x, y, w, h = (v / self.scale for v in (x, y, w, h))
            grow_x, grow_y = self.margin * w, self.margin * h
            boxes.append((max(0.0, x - grow_x), max(0.0, y - grow_y),
                          min(float(width), x + w + grow_x), min(float(height), y + h + grow_y)))
        return [tuple(int(round(v)) for v in (x0, y0, x1 - x0, y1 - y0)) for x0, y0, x1, y1 in merge_overlapping(boxes)]


def merge_overlapping(boxes):
    """Unions of `(x0, y0, x1, y1)` boxes that overlap, until none do."""
    boxes = [list(box) for box in boxes]
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    boxes[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return [tuple(box) for box in boxes]
