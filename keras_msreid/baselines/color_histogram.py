"""Colour-histogram ReID baseline: HSV histograms of horizontal stripes.

The classic hand-crafted descriptor (as in ELF / LOMO-style baselines): the image is
cut into horizontal stripes (head, torso, legs...), each stripe gets a joint
hue-saturation-value histogram, and the stripe histograms are concatenated. Each
stripe holds 1 / num_stripes of the mass, so every feature vector sums to 1 (L1
normalised) and distances between vectors are distances between distributions.
Pure numpy + OpenCV.

Example:

>>> import numpy as np
>>> images = np.random.default_rng(0).integers(0, 256, (5, 128, 64, 3), dtype=np.uint8)
>>> features = color_histogram_features(images, num_stripes=6, bins=(8, 4, 4))
>>> features.shape
(5, 768)
>>> distances = histogram_distance(features[:2], features, metric="hellinger")
>>> distances.shape
(2, 5)
"""

import cv2
import numpy as np

METRICS = ("hellinger", "l1", "chi2")
_HSV_RANGES = (180, 256, 256)  # OpenCV's 8-bit HSV: hue in [0, 180)
_BLOCK_ELEMENTS = 1 << 24  # bounds the temporaries of the L1 and chi-square distances


def color_histogram_features(images, num_stripes=6, bins=(8, 4, 4)):
    """HSV stripe histograms of RGB uint8 images.

    Args:
        images: (N, H, W, 3) or (H, W, 3) RGB uint8 array; all images the same size.
        num_stripes: horizontal stripes of (nearly) equal height, top to bottom.
        bins: bins of hue, saturation and value; a joint histogram of prod(bins) cells.

    Returns:
        float32 (N, num_stripes * prod(bins)) features (or (D,) for one image),
        stripe by stripe, hue-major inside a stripe; each row sums to 1.
    """
    images = np.asarray(images)
    single = images.ndim == 3
    if single:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"images must be RGB uint8 of shape (N, H, W, 3) or (H, W, 3), got {images.dtype} {images.shape}"
        )
    n, h, w, _ = images.shape
    if not 1 <= num_stripes <= h:
        raise ValueError(f"num_stripes must be between 1 and the image height {h}, got {num_stripes}")
    if len(bins) != 3 or any(not 1 <= b <= r for b, r in zip(bins, _HSV_RANGES)):
        raise ValueError(f"bins must be 3 counts within {_HSV_RANGES} (hue, saturation, value), got {bins}")
    # One colour conversion for the whole batch: stack the images vertically.
    hsv = cv2.cvtColor(np.ascontiguousarray(images).reshape(n * h, w, 3), cv2.COLOR_RGB2HSV)
    hsv = hsv.reshape(n, h, w, 3).astype(np.int64)
    cell = np.zeros((n, h, w), np.int64)
    for channel, (count, value_range) in enumerate(zip(bins, _HSV_RANGES)):
        cell = cell * count + hsv[..., channel] * count // value_range
    cells = int(np.prod(bins))
    boundaries = np.arange(num_stripes + 1) * h // num_stripes
    stripe_of_row = np.repeat(np.arange(num_stripes), np.diff(boundaries))
    index = (np.arange(n)[:, None, None] * num_stripes + stripe_of_row[None, :, None]) * cells + cell
    counts = np.bincount(index.ravel(), minlength=n * num_stripes * cells).reshape(n, num_stripes, cells)
    pixels_per_stripe = (np.diff(boundaries) * w)[None, :, None]
    features = (counts / (pixels_per_stripe * num_stripes)).astype(np.float32).reshape(n, -1)
    return features[0] if single else features


def histogram_distance(query_features, gallery_features, metric="hellinger"):
    """(num_query, num_gallery) float32 distances between L1-normalised histograms.

    Args:
        query_features, gallery_features: (N, D) and (M, D) non-negative rows summing to 1.
        metric: "hellinger" (sqrt(1 - Bhattacharyya coefficient), in [0, 1]),
            "l1" (sum |q - g|, in [0, 2]) or "chi2" (0.5 * sum (q - g)^2 / (q + g), in [0, 1]).
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    query = _check_histograms(query_features, "query_features")
    gallery = _check_histograms(gallery_features, "gallery_features")
    if query.shape[1] != gallery.shape[1]:
        raise ValueError(
            f"query_features and gallery_features differ in length: {query.shape[1]} and {gallery.shape[1]}"
        )
    if metric == "hellinger":
        # float64: the square root magnifies the rounding of 1 - coefficient near 0.
        coefficient = np.sqrt(query.astype(np.float64)) @ np.sqrt(gallery.astype(np.float64)).T
        return np.sqrt(np.clip(1.0 - coefficient, 0.0, 1.0)).astype(np.float32)
    distances = np.empty((len(query), len(gallery)), np.float32)
    rows = max(1, _BLOCK_ELEMENTS // max(1, gallery.size))
    for start in range(0, len(query), rows):
        q = query[start:start + rows, None, :]
        if metric == "l1":
            block = np.abs(q - gallery[None]).sum(axis=2)
        else:
            total = q + gallery[None]
            block = 0.5 * np.divide((q - gallery[None]) ** 2, total, out=np.zeros_like(total),
                                    where=total > 0).sum(axis=2)
        distances[start:start + rows] = block
    return distances


def _check_histograms(features, name):
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (N, D) array, got shape {features.shape}")
    if not np.all(np.isfinite(features)) or np.any(features < 0):
        raise ValueError(f"{name} must hold finite non-negative histogram values")
    return features
