"""Reading thumbnails and writing PNGs for the report pictures (OpenCV, TensorFlow-free)."""

import logging

import cv2
import numpy as np

from keras_msreid.utils.atomic import atomic_path

log = logging.getLogger(__name__)

PLACEHOLDER_GRAY = 128


def read_thumbnail(path, size):
    """BGR `(height, width, 3)` uint8 of the image at `path` resized to `size = (height, width)`.

    An unreadable file is logged and drawn as a gray placeholder crossed out, so one
    bad image does not stop a report.
    """
    height, width = size
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        log.warning("report: cannot read image %s; drawing a placeholder", path)
        image = np.full((height, width, 3), PLACEHOLDER_GRAY, np.uint8)
        cv2.line(image, (0, 0), (width - 1, height - 1), (0, 0, 0), 1)
        cv2.line(image, (0, height - 1), (width - 1, 0), (0, 0, 0), 1)
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def write_png(path, image):
    """Writes a BGR image as PNG atomically; raises OSError naming the file on failure."""
    with atomic_path(path) as temporary:
        if not cv2.imwrite(str(temporary), image):
            raise OSError(f"could not write image {path}")
