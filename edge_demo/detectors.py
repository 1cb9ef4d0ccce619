"""Person detectors: OpenCV's built-in HOG people detector, or a user-supplied TFLite SSD.

Both return `Detection`s with boxes in frame pixels, keep only people at least
`min_height` pixels tall and scoring at least `min_score`, and suppress
overlapping boxes.

HOG needs no download. "default" is OpenCV's 64x128 people model (people about
100 px tall or more); "daimler" is its 48x96 model for smaller people. `resize`
scales the frame before detection: below 1 is faster, above 1 finds people
smaller than the model's window. Given a `MotionRegions`, HOG searches only where
the picture moved (a fixed camera), which is most of its cost saved on a quiet
scene. A HOG window holds its person with a margin; the box it reports is the
person's own extent inside the window (`HOG_PERSON_BOX`).

A TFLite detector is SSD-style: one image input, outputs boxes (1, N, 4) as
normalised (ymin, xmin, ymax, xmax), classes (1, N), scores (1, N) and a count,
found by name (boxes / classes / scores / num) or else in that order, as
`TFLite_Detection_PostProcess` writes them.

Example:

>>> detector = HOGDetector(min_height=80)
>>> [d.box for d in detector(frame)]
[(228, 96, 35, 93)]
"""

import dataclasses
import math

import cv2
import numpy as np

from .litert import TFLiteModel, tensor_quantization

HOG_MODELS = {
    "default": ((64, 128), cv2.HOGDescriptor_getDefaultPeopleDetector),
    "daimler": ((48, 96), cv2.HOGDescriptor_getDaimlerPeopleDetector),
}
# Where the person lies inside a HOG window (x, y offsets and width, height as shares of
# the window), measured against hand-drawn boxes on vtest.avi (docs/RESULTS.md).
HOG_PERSON_BOX = (0.25, 0.125, 0.54, 0.73)


@dataclasses.dataclass(frozen=True)
class Detection:
    box: tuple  # (x, y, w, h) in frame pixels
    score: float


def _check_min_score(min_score):
    if not (math.isfinite(min_score) and min_score >= 0):
        raise ValueError(f"min_score must be a finite number >= 0, got {min_score}")
    return float(min_score)


def _check_min_height(min_height):
    if not (math.isfinite(min_height) and min_height >= 0):
        raise ValueError(f"min_height must be a finite number >= 0, got {min_height}")
    return float(min_height)


def _check_contained(contained):
    if not 0.0 < contained <= 1.0:
        raise ValueError(f"contained must be in (0, 1], got {contained}")
    return float(contained)


def _suppress(boxes, scores, min_score, min_height, overlap, contained):
    """Drops small and low-scoring boxes, then non-maximum suppression, then nested boxes.

    A box with at least `contained` of its area inside a larger kept box is dropped:
    HOG often fires on a person's legs and torso inside the box of the whole person,
    an IoU too low for non-maximum suppression, and the part would be tracked and
    enrolled as a second person.
    """
    keep = [i for i, (box, score) in enumerate(zip(boxes, scores)) if box[3] >= min_height and score >= min_score]
    if not keep:
        return []
    kept_boxes = [[int(round(v)) for v in boxes[i]] for i in keep]
    kept_scores = [float(scores[i]) for i in keep]
    chosen = np.asarray(cv2.dnn.NMSBoxes(kept_boxes, kept_scores, min_score, overlap)).reshape(-1)
    largest_first = sorted(chosen.tolist(), key=lambda i: -kept_boxes[i][2] * kept_boxes[i][3])
    outer = []
    for i in largest_first:
        if not any(_inside_share(kept_boxes[i], kept_boxes[j]) >= contained for j in outer):
            outer.append(i)
    return [Detection(tuple(kept_boxes[i]), kept_scores[i]) for i in chosen if i in outer]


def _inside_share(box, other):
    """Share of `box`'s area that lies inside `other` ((x, y, w, h) boxes)."""
    ix = max(0, min(box[0] + box[2], other[0] + other[2]) - max(box[0], other[0]))
    iy = max(0, min(box[1] + box[3], other[1] + other[3]) - max(box[1], other[1]))
    return ix * iy / max(box[2] * box[3], 1)


class HOGDetector:
    """OpenCV's HOG + linear SVM people detector.

    Args:
        model: "default" (64x128 window) or "daimler" (48x96 window).
        min_score: SVM margin below which a window is not a person.
        min_height: smallest person kept, in frame pixels.
        resize: frame scale before detection.
        scale: pyramid step between detection scales (smaller is slower and finer).
        stride: window stride in pixels.
        overlap: IoU above which the lower-scoring of two boxes is dropped.
        contained: share of a box's area inside a larger box above which it is
            dropped (1 keeps all but exact nestings).
        motion: a `MotionRegions` (search only where the picture moved), or None
            (search the whole frame).
    """

    def __init__(self, model="default", min_score=0.5, min_height=0, resize=1.0, scale=1.05, stride=8, overlap=0.45,
                 contained=0.8, motion=None):
        if model not in HOG_MODELS:
            raise ValueError(f"unknown HOG model {model!r}; choose from {sorted(HOG_MODELS)}")
        if not (math.isfinite(resize) and resize > 0):
            raise ValueError(f"resize must be a finite number > 0, got {resize}")
        if not (math.isfinite(scale) and scale > 1):
            raise ValueError(f"scale must be a finite number > 1, got {scale}")
        window, weights = HOG_MODELS[model]
        self.window = window
        self.hog = cv2.HOGDescriptor(window, (16, 16), (8, 8), (8, 8), 9)
        self.hog.setSVMDetector(weights())
        self.min_score = _check_min_score(min_score)
        self.min_height = _check_min_height(min_height)
        self.resize = float(resize)
        self.scale = float(scale)
        self.stride = (int(stride), int(stride))
        self.overlap = float(overlap)
        self.contained = _check_contained(contained)
        self.motion = motion

    def __call__(self, frame):
        height, width = frame.shape[:2]
        regions = [(0, 0, width, height)] if self.motion is None else self.motion(frame)
        boxes, scores = [], []
        for region in regions:
            region_boxes, region_scores = self._search(frame, self._fit_window(region, width, height))
            boxes.append(region_boxes)
            scores.append(region_scores)
        if not boxes:
            return []
        # min_height is the person's; a window is taller than its person.
        windows = _suppress(np.concatenate(boxes), np.concatenate(scores), self.min_score,
                            self.min_height / HOG_PERSON_BOX[3], self.overlap, self.contained)
        return [Detection(_person_box(d.box), d.score) for d in windows]

    def _fit_window(self, region, width, height):
        """`region` grown to hold a detection window of its own height (in frame pixels), clipped to the frame.

        A motion region hugs the person, but HOG's window is wider than its person
        (`HOG_PERSON_BOX`) and slides in strides: the region gets the window's
        aspect ratio and a quarter more width, and at least one window's size.
        """
        x, y, w, h = region
        window_w, window_h = (size / self.resize for size in self.window)
        need_h = max(h, window_h)
        need_w = max(w, 1.25 * need_h * window_w / window_h, window_w)
        x, y = x - (need_w - w) / 2, y - (need_h - h) / 2
        x0, y0 = max(0, int(x)), max(0, int(y))
        return x0, y0, min(width, int(math.ceil(x + need_w))) - x0, min(height, int(math.ceil(y + need_h))) - y0

    def _search(self, frame, region):
        x, y, w, h = region
        image = frame[y:y + h, x:x + w]
        if self.resize != 1.0:
            image = cv2.resize(image, None, fx=self.resize, fy=self.resize, interpolation=cv2.INTER_LINEAR)
        if image.shape[0] < self.window[1] or image.shape[1] < self.window[0]:
            return np.zeros((0, 4)), np.zeros(0)
        rects, weights = self.hog.detectMultiScale(image, winStride=self.stride, padding=(8, 8), scale=self.scale)
        boxes = np.asarray(rects, np.float64).reshape(-1, 4) / self.resize + np.array([x, y, 0, 0])
        return boxes, np.asarray(weights, np.float64).reshape(-1)


def _person_box(window):
    """The person's own box inside a HOG window (`HOG_PERSON_BOX`)."""
    x, y, w, h = window
    dx, dy, dw, dh = HOG_PERSON_BOX
    return (int(round(x + dx * w)), int(round(y + dy * h)), max(1, int(round(dw * w))), max(1, int(round(dh * h))))


class TFLiteDetector:
    """An SSD-style TFLite detector (e.g. COCO SSD MobileNet), keeping one class.

    Args:
        path: the `.tflite` file.
        person_class: class index of a person in the model's label map
            (0 in the COCO SSD MobileNet models of the TFLite examples).
        min_score, min_height, overlap, contained: as for `HOGDetector`.
        num_threads: interpreter threads.
    """

    def __init__(self, path, person_class=0, min_score=0.5, min_height=0, overlap=0.45, contained=0.8,
                 num_threads=None):
        self.model = TFLiteModel(path, num_threads=num_threads)
        if len(self.model.input_details) != 1:
            raise ValueError(f"detector {path} must take one image input, takes {self.model.input_names}")
        self.input_name, details = next(iter(self.model.input_details.items()))
        self.input_size = tuple(int(v) for v in details["shape"][1:3])
        # Pixels go in as real values in [-1, 1] (the quantization maps them back to the
        # integers the model wants), except into an integer input without quantization.
        self.raw_pixels = np.dtype(details["dtype"]) != np.float32 and tensor_quantization(details) is None
        if len(self.input_size) != 2 or min(self.input_size) < 1 or int(details["shape"][-1]) != 3:
            raise ValueError(f"detector {path} must take one (1, height, width, 3) image, "
                             f"takes {list(details['shape'])}")
        self.outputs = self._output_roles(path)
        self._check_output_shapes(path)
        if person_class < 0:
            raise ValueError(f"person_class must be >= 0, got {person_class}")
        self.person_class = int(person_class)
        self.min_score = _check_min_score(min_score)
        self.min_height = _check_min_height(min_height)
        self.overlap = float(overlap)
        self.contained = _check_contained(contained)

    def _output_roles(self, path):
        """{role: output name} for boxes, classes, scores, by name or else by order."""
        names = list(self.model.output_details)
        if len(names) < 3:
            raise ValueError(f"detector {path} must output boxes, classes and scores, outputs {names}")
        roles = {}
        for role, word in (("boxes", "box"), ("classes", "class"), ("scores", "score")):
            named = [name for name in names if word in name.lower()]
            if len(named) == 1:
                roles[role] = named[0]
        if len(roles) < 3:
            # Unnamed outputs: the order of TFLite_Detection_PostProcess.
            ordered = sorted(names, key=lambda name: self.model.output_details[name]["index"])
            roles = dict(zip(("boxes", "classes", "scores"), ordered))
        return roles

    def _check_output_shapes(self, path, shapes=None):
        """Boxes (1, N, 4), classes and scores (1, N): else this is not an SSD-style detector."""
        if shapes is None:
            shapes = {role: tuple(int(v) for v in self.model.output_details[name]["shape"])
                      for role, name in self.outputs.items()}
        count = int(np.prod(shapes["boxes"])) // 4 if shapes["boxes"] else 0
        if (not shapes["boxes"] or shapes["boxes"][-1] != 4
                or any(int(np.prod(shapes[role])) != count for role in ("classes", "scores"))):
            raise ValueError(f"detector {path} is not an SSD-style detector: its outputs "
                             f"{ {self.outputs[role]: list(shape) for role, shape in shapes.items()} } are not "
                             f"boxes (1, N, 4), classes (1, N) and scores (1, N)")

    def __call__(self, frame):
        height, width = self.input_size
        rgb = cv2.cvtColor(cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)
        image = rgb if self.raw_pixels else (rgb.astype(np.float32) - 127.5) / 127.5
        outputs = self.model(**{self.input_name: image[None]})
        self._check_output_shapes(self.model.path, {role: outputs[name].shape for role, name in self.outputs.items()})
        boxes = outputs[self.outputs["boxes"]].reshape(-1, 4)
        classes = outputs[self.outputs["classes"]].reshape(-1)
        scores = outputs[self.outputs["scores"]].reshape(-1)
        people = np.round(classes).astype(int) == self.person_class
        frame_h, frame_w = frame.shape[:2]
        ymin, xmin, ymax, xmax = (np.clip(boxes[people, i], 0.0, 1.0) for i in range(4))
        pixel_boxes = np.stack([xmin * frame_w, ymin * frame_h, (xmax - xmin) * frame_w, (ymax - ymin) * frame_h], 1)
        return _suppress(pixel_boxes, scores[people], self.min_score, self.min_height, self.overlap, self.contained)
