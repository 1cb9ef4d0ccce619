"""HSV stripe histograms and histogram distances against slow per-pixel references."""

import cv2
import numpy as np
import pytest

from keras_msreid.baselines import color_histogram
from keras_msreid.baselines import color_histogram_features, histogram_distance


def reference_features(image, num_stripes, bins):
    """Counts pixel by pixel with Python loops: the obviously correct version."""
    h, w, _ = image.shape
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    ranges = (180, 256, 256)
    cells = bins[0] * bins[1] * bins[2]
    feature = np.zeros(num_stripes * cells)
    for stripe in range(num_stripes):
        top, bottom = stripe * h // num_stripes, (stripe + 1) * h // num_stripes
        for row in range(top, bottom):
            for col in range(w):
                hb, sb, vb = (int(hsv[row, col, c]) * bins[c] // ranges[c] for c in range(3))
                feature[stripe * cells + (hb * bins[1] + sb) * bins[2] + vb] += 1.0
        feature[stripe * cells:(stripe + 1) * cells] /= (bottom - top) * w * num_stripes
    return feature


def random_images(count, h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("shape, num_stripes, bins", [((3, 24, 8), 6, (8, 4, 4)), ((2, 10, 7), 3, (5, 3, 2))])
def test_features_match_slow_reference(shape, num_stripes, bins):
    images = random_images(*shape)
    features = color_histogram_features(images, num_stripes=num_stripes, bins=bins)
    assert features.shape == (shape[0], num_stripes * int(np.prod(bins)))
    assert features.dtype == np.float32
    for image, feature in zip(images, features):
        np.testing.assert_allclose(feature, reference_features(image, num_stripes, bins), atol=1e-7)


def test_rows_are_l1_normalised_and_stripes_carry_equal_mass():
    features = color_histogram_features(random_images(4, 13, 6), num_stripes=4, bins=(4, 2, 2))
    np.testing.assert_allclose(features.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(features.reshape(4, 4, 16).sum(axis=2), 0.25, rtol=1e-6)


def test_single_image_gives_a_vector():
    images = random_images(2, 16, 8)
    np.testing.assert_array_equal(color_histogram_features(images[1]), color_histogram_features(images)[1])


def test_stripes_follow_the_image_layout():
    image = np.zeros((12, 4, 3), np.uint8)
    image[:6] = (255, 0, 0)  # red top half, black bottom half
    feature = color_histogram_features(image, num_stripes=2, bins=(6, 2, 2)).reshape(2, 6, 2, 2)
    assert feature[0, 0, 1, 1] == pytest.approx(0.5)  # hue bin 0, saturated, bright
    assert feature[1, 0, 0, 0] == pytest.approx(0.5)  # black: lowest saturation and value


@pytest.mark.parametrize(
    "images, kwargs, message",
    [
        (np.zeros((2, 8, 4, 3), np.float32), {}, r"images must be RGB uint8 of shape \(N, H, W, 3\)"),
        (np.zeros((2, 8, 4), np.uint8), {}, r"images must be RGB uint8"),
        (np.zeros((8, 4, 3), np.uint8), {"num_stripes": 9}, "num_stripes must be between 1 and the image height 8"),
        (np.zeros((8, 4, 3), np.uint8), {"bins": (181, 4, 4)}, "bins must be 3 counts"),
    ],
)
def test_feature_errors(images, kwargs, message):
    with pytest.raises(ValueError, match=message):
        color_histogram_features(images, **kwargs)


def reference_distance(p, q, metric):
    if metric == "hellinger":
        return np.sqrt(max(0.0, 1.0 - sum(np.sqrt(a * b) for a, b in zip(p, q))))
    if metric == "l1":
        return sum(abs(a - b) for a, b in zip(p, q))
    return 0.5 * sum((a - b) ** 2 / (a + b) for a, b in zip(p, q) if a + b > 0)


@pytest.mark.parametrize("metric", color_histogram.METRICS)
def test_distances_match_reference(metric, monkeypatch):
    monkeypatch.setattr(color_histogram, "_BLOCK_ELEMENTS", 40)  # several query blocks
    rng = np.random.default_rng(1)
    query, gallery = rng.random((5, 12)), rng.random((7, 12))
    query[0, :6] = 0.0  # empty bins, where chi-square divides 0 by 0
    gallery[0, :6] = 0.0
    query /= query.sum(axis=1, keepdims=True)
    gallery /= gallery.sum(axis=1, keepdims=True)
    distances = histogram_distance(query, gallery, metric=metric)
    assert distances.shape == (5, 7) and distances.dtype == np.float32
    expected = [[reference_distance(p, q, metric) for q in gallery] for p in query]
    np.testing.assert_allclose(distances, expected, atol=1e-6)


@pytest.mark.parametrize("metric, disjoint", [("hellinger", 1.0), ("l1", 2.0), ("chi2", 1.0)])
def test_distance_bounds(metric, disjoint):
    histograms = np.array([[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.25, 0.75]])
    distances = histogram_distance(histograms, histograms, metric=metric)
    np.testing.assert_allclose(np.diag(distances), 0.0, atol=1e-6)
    assert distances[0, 1] == pytest.approx(disjoint, abs=1e-6)


def test_distance_errors():
    features = np.full((2, 4), 0.25)
    with pytest.raises(ValueError, match="metric must be one of"):
        histogram_distance(features, features, metric="cosine")
    with pytest.raises(ValueError, match="query_features and gallery_features differ in length: 4 and 3"):
        histogram_distance(features, features[:, :3])
    with pytest.raises(ValueError, match="gallery_features must hold finite non-negative"):
        histogram_distance(features, -features)
    with pytest.raises(ValueError, match=r"query_features must be a 2-D \(N, D\) array"):
        histogram_distance(features[0], features)
