"""Where the network looks: the STN patches of each level drawn as boxes on the images.

`theta_to_boxes` turns the extractor's `L_theta` (scale_y, scale_x, centre_y,
centre_x in normalised map coordinates, align-corners) into pixel boxes on the
input image: the patch samples rows `centre_y + scale_y * linspace(-1, 1, ph)`, so
its first and last rows sit at cells `(centre_y -+ scale_y + 1) / 2 * (h - 1)` of an
`h`-cell map; a cell covers `image_height / h` pixels. TensorFlow-free (OpenCV).

Example:

>>> boxes = theta_to_boxes(features["mid_theta"][0], map_size=(20, 8), image_size=(160, 64), patch_size=(5, 3))
>>> draw_attention([image_a, image_b], [{"mid": boxes_a}, {"mid": boxes_b}], "attention.png")
"""

import cv2
import numpy as np

from keras_msreid.reports._image_io import write_png

LEVEL_COLORS = {"low": (255, 160, 0), "mid": (0, 200, 255), "high": (255, 0, 200)}  # BGR
SCALE = 3  # pictures are upscaled so that thin boxes on 160x64 crops stay visible


def theta_to_boxes(theta, map_size, image_size, patch_size):
    """Pixel boxes `(parts, 4)` as `(x0, y0, x1, y1)` floats, clipped to the image.

    Args:
        theta: `(parts, 4)` = (scale_y, scale_x, centre_y, centre_x) of one image.
        map_size: `(h, w)` cells of the level's feature map.
        image_size: `(height, width)` pixels of the model's input image.
        patch_size: `(ph, pw)` samples of the patch.
    """
    theta = np.asarray(theta, np.float64)
    if theta.ndim != 2 or theta.shape[1] != 4:
        raise ValueError(f"theta must have shape (parts, 4), got {theta.shape}")
    y0, y1 = _axis_extent(theta[:, 2], theta[:, 0], patch_size[0], map_size[0], image_size[0])
    x0, x1 = _axis_extent(theta[:, 3], theta[:, 1], patch_size[1], map_size[1], image_size[1])
    return np.stack([x0, y0, x1, y1], axis=1)


def _axis_extent(centre, scale, samples, cells, pixels):
    half = scale if samples > 1 else np.zeros_like(scale)
    first = (centre - half + 1.0) * 0.5 * (cells - 1)
    last = (centre + half + 1.0) * 0.5 * (cells - 1)
    cell_pixels = pixels / cells
    return np.clip(first * cell_pixels, 0, pixels), np.clip((last + 1.0) * cell_pixels, 0, pixels)


def draw_attention(images_rgb, boxes, path=None, captions=None):
    """Draws each image with its boxes per level, side by side, upscaled `SCALE` times.

    Args:
        images_rgb: RGB uint8 images `(height, width, 3)` at the model's input size.
        boxes: per image, a dict level -> `(parts, 4)` pixel boxes (`theta_to_boxes`).
        path: where to write the PNG; None only returns the picture.
        captions: optional text under each image.

    Returns:
        The picture, BGR uint8.
    """
    if len(images_rgb) != len(boxes) or not images_rgb:
        raise ValueError(f"got {len(images_rgb)} images and {len(boxes)} box sets")
    panels = []
    for index, (image, level_boxes) in enumerate(zip(images_rgb, boxes)):
        height, width = image.shape[:2]
        panel = cv2.resize(cv2.cvtColor(np.asarray(image, np.uint8), cv2.COLOR_RGB2BGR),
                           (width * SCALE, height * SCALE), interpolation=cv2.INTER_NEAREST)
        for level, level_box in level_boxes.items():
            color = LEVEL_COLORS.get(level, (255, 255, 255))
            for x0, y0, x1, y1 in np.asarray(level_box):
                top_left = (int(round(x0 * SCALE)), int(round(y0 * SCALE)))
                bottom_right = (int(round(x1 * SCALE)) - 1, int(round(y1 * SCALE)) - 1)
                cv2.rectangle(panel, top_left, bottom_right, color, 2)
        footer = np.full((22 * (len(level_boxes) + 1), panel.shape[1], 3), 255, np.uint8)
        caption = captions[index] if captions else ""
        cv2.putText(footer, caption, (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        for row, level in enumerate(level_boxes, start=1):
            cv2.putText(footer, level, (4, 15 + 22 * row), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                        LEVEL_COLORS.get(level, (0, 0, 0)), 1, cv2.LINE_AA)
        panels.append(np.concatenate([panel, footer], axis=0))
    height = max(panel.shape[0] for panel in panels)
    spacer = np.full((height, 12, 3), 255, np.uint8)
    row = []
    for panel in panels:
        padded = np.full((height, panel.shape[1], 3), 255, np.uint8)
        padded[: panel.shape[0]] = panel
        row += [padded, spacer]
    picture = np.concatenate(row[:-1], axis=1)
    if path is not None:
        write_png(path, picture)
    return picture
