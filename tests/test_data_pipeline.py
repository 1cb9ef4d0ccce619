"""tf.data pipelines on tiny image files written by the tests."""

import collections

import cv2
import numpy as np
import pytest
import tensorflow as tf

from keras_msreid.data import (
    AugmentConfig,
    PKSampler,
    load_image,
    make_eval_dataset,
    make_train_dataset,
    steps_per_epoch,
)

Record = collections.namedtuple("Record", "path pid camid")

SIZE = (16, 8)


def write_image(path, rgb):
    cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))
    return str(path)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """6 identities, 3 to 6 PNG images each, 24x12, one flat colour per image."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    result = []
    for pid in range(6):
        for index in range(3 + pid % 4):
            colour = rng.integers(0, 256, 3, dtype=np.uint8)
            image = np.broadcast_to(colour, (24, 12, 3))
            path = write_image(folder / f"{pid:04d}_c1s1_{index:06d}_00.png", image)
            result.append(Record(path, pid, 1))
    return result


def colours_by_pid(records):
    """Each identity's set of image colours, to tell which record an output came from."""
    colours = collections.defaultdict(set)
    for record in records:
        rgb = cv2.imread(record.path)[0, 0, ::-1]
        colours[record.pid].add(tuple(int(c) for c in rgb))
    return colours


def check_pk_batch(images, labels, p, k):
    assert images.shape == (p * k, *SIZE, 3) and images.dtype == tf.float32
    assert labels.shape == (p * k,) and labels.dtype == tf.int32
    blocks = labels.numpy().reshape(p, k)
    assert (blocks == blocks[:, :1]).all() and len(set(blocks[:, 0])) == p


def test_train_batches_are_pk_with_images_matching_their_labels(records):
    colours = colours_by_pid(records)
    dataset = make_train_dataset(records, SIZE, p=3, k=2, augment=None)
    for images, labels in dataset.take(8):
        check_pk_batch(images, labels, 3, 2)
        for image, label in zip(images.numpy(), labels.numpy()):
            assert (image == image[0, 0]).all(), "a flat image stays flat"
            assert tuple(image[0, 0].astype(int)) in colours[label]


def test_train_stream_follows_the_sampler_epoch_after_epoch(records):
    pids = np.array([record.pid for record in records])
    sampler = PKSampler(pids, p=3, k=2, seed=4)
    expected = np.concatenate([pids[sampler.epoch(0)], pids[sampler.epoch(1)]])
    dataset = make_train_dataset(records, SIZE, p=3, k=2, seed=4, deterministic=True)
    steps = steps_per_epoch(records, p=3, k=2)
    assert steps == sampler.batches_per_epoch
    labels = [labels.numpy() for _, labels in dataset.take(2 * steps)]
    np.testing.assert_array_equal(np.stack(labels), expected)


def test_augmented_batches_stay_in_the_pixel_range_and_repeat_by_seed(records):
    config = AugmentConfig(padding=2, brightness=0.3, contrast=0.3)

    def first_batches(seed):
        dataset = make_train_dataset(records, SIZE, 3, 2, config, seed, deterministic=True)
        return [(images.numpy(), labels.numpy()) for images, labels in dataset.take(3)]

    first, again, other = first_batches(1), first_batches(1), first_batches(2)
    for (images, labels), (images_again, labels_again) in zip(first, again):
        assert images.min() >= 0.0 and images.max() <= 255.0
        np.testing.assert_array_equal(images, images_again)
        np.testing.assert_array_equal(labels, labels_again)
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(first, other))


def test_corrupt_files_are_skipped_and_batches_keep_p_times_k_images(records, tmp_path, capfd):
    broken = list(records)
    garbage = tmp_path / "0000_c1s1_000000_00.png"
    garbage.write_bytes(b"not an image")
    truncated = tmp_path / "0001_c1s1_000000_00.jpg"
    jpeg = cv2.imencode(".jpg", np.full((24, 12, 3), 128, np.uint8))[1].tobytes()
    truncated.write_bytes(jpeg[: len(jpeg) // 2])
    broken[0] = Record(str(garbage), broken[0].pid, 1)
    broken[3] = Record(str(truncated), broken[3].pid, 1)
    # Identity 5 loses every image: its slots are filled from other identities.
    broken = [r if r.pid != 5 else Record(str(garbage), 5, 1) for r in broken]
    colours = colours_by_pid([r for r in records if r.pid != 5])
    dataset = make_train_dataset(broken, SIZE, p=3, k=2, augment=None, deterministic=True)
    steps = steps_per_epoch(broken, p=3, k=2)
    for images, labels in dataset.take(3 * steps):
        assert images.shape == (6, *SIZE, 3)
        for image, label in zip(images.numpy(), labels.numpy()):
            assert label != 5
            assert tuple(image[0, 0].astype(int)) in colours[label]
    log = capfd.readouterr().err
    assert "skipped unreadable images" in log
    assert str(garbage) in log and str(truncated) in log


def test_start_batch_resumes_the_same_stream(records):
    def stream(start_batch):
        dataset = make_train_dataset(
            records, SIZE, 3, 2, AugmentConfig(padding=2), seed=5, deterministic=True,
            start_batch=start_batch,
        )
        batches = dataset.take(6 - start_batch)
        return [(images.numpy(), labels.numpy()) for images, labels in batches]

    full, resumed = stream(0), stream(4)
    for (images, labels), (images_resumed, labels_resumed) in zip(full[4:], resumed):
        np.testing.assert_array_equal(images, images_resumed)
        np.testing.assert_array_equal(labels, labels_resumed)


def test_cached_images_give_the_same_stream_as_decoding(records):
    def stream(cache_decoded):
        dataset = make_train_dataset(
            records, SIZE, 3, 2, AugmentConfig(padding=2), seed=2, deterministic=True,
            cache_decoded=cache_decoded,
        )
        return [(images.numpy(), labels.numpy()) for images, labels in dataset.take(5)]

    for (images, labels), (cached_images, cached_labels) in zip(stream(False), stream(True)):
        np.testing.assert_array_equal(images, cached_images)
        np.testing.assert_array_equal(labels, cached_labels)


def test_cache_leaves_out_corrupt_files_and_names_them(records, tmp_path, capfd):
    garbage = tmp_path / "0002_c1s1_000000_00.png"
    garbage.write_bytes(b"not an image")
    broken = [Record(str(garbage), 2, 1) if r.pid == 2 else r for r in records]
    dataset = make_train_dataset(broken, SIZE, p=3, k=2, augment=None, cache_decoded=True)
    colours = colours_by_pid(records)
    for images, labels in dataset.take(4):
        check_pk_batch(images, labels, 3, 2)
        assert 2 not in labels.numpy()
        for image, label in zip(images.numpy(), labels.numpy()):
            assert tuple(image[0, 0].astype(int)) in colours[label]
    assert f'skipped unreadable images: ["{garbage}"' in capfd.readouterr().err
    all_broken = [Record(str(garbage), r.pid, 1) for r in records]
    with pytest.raises(ValueError, match=f"none of the {len(records)} images could be decoded"):
        make_train_dataset(all_broken, SIZE, p=3, k=2, cache_decoded=True)


def test_cache_refuses_a_distribution_scope(records):
    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
        with pytest.raises(ValueError, match="cache_decoded=True.* outside a tf.distribute"):
            make_train_dataset(records, SIZE, p=3, k=2, cache_decoded=True)


def test_train_dataset_errors_name_the_problem(records):
    with pytest.raises(ValueError, match="make_train_dataset got no records"):
        make_train_dataset([], SIZE)
    with pytest.raises(ValueError, match=r"image_size must be \(height, width\) .* got \(16,\)"):
        make_train_dataset(records, (16,))
    with pytest.raises(ValueError, match=r"at least p=16 identities .* only 6 identities"):
        make_train_dataset(records, SIZE, p=16, k=4)


def test_eval_keeps_order_and_the_last_partial_batch(records):
    dataset = make_eval_dataset(records[:7], SIZE, batch_size=3)
    batches = [images.numpy() for images in dataset]
    assert [len(b) for b in batches] == [3, 3, 1]
    got = np.concatenate(batches)
    assert got.dtype == np.float32
    for image, record in zip(got, records[:7]):
        np.testing.assert_array_equal(image, load_image(record.path, SIZE).numpy())


def test_eval_accepts_plain_paths(records):
    paths = [record.path for record in records[:4]]
    from_paths = np.concatenate(list(make_eval_dataset(paths, SIZE, batch_size=4)))
    from_records = np.concatenate(list(make_eval_dataset(records[:4], SIZE, batch_size=4)))
    np.testing.assert_array_equal(from_paths, from_records)


def test_eval_dataset_errors_name_the_argument():
    with pytest.raises(ValueError, match="make_eval_dataset got no images"):
        make_eval_dataset([])
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        make_eval_dataset(["a.jpg"], batch_size=0)


def test_load_image_makes_grayscale_and_rgba_into_rgb(tmp_path):
    grey = np.arange(16 * 8, dtype=np.uint8).reshape(16, 8)
    grey_path = tmp_path / "grey.png"
    cv2.imwrite(str(grey_path), grey)
    rgba = np.dstack([np.full((16, 8), v, np.uint8) for v in (10, 20, 30, 40)])
    rgba_path = tmp_path / "rgba.png"
    cv2.imwrite(str(rgba_path), rgba[..., [2, 1, 0, 3]])  # OpenCV writes BGRA
    loaded_grey = load_image(str(grey_path), (16, 8)).numpy()
    np.testing.assert_array_equal(loaded_grey, np.repeat(grey[..., None], 3, axis=2))
    loaded_rgba = load_image(str(rgba_path), (16, 8)).numpy()
    np.testing.assert_array_equal(loaded_rgba, np.broadcast_to([10, 20, 30], (16, 8, 3)))


@pytest.mark.parametrize("source_size", [(24, 12), (8, 4), (16, 4), (40, 6)])
def test_load_image_equals_an_antialiased_bilinear_resize(tmp_path, source_size):
    rgb = np.random.default_rng(1).integers(0, 256, (*source_size, 3), dtype=np.uint8)
    path = write_image(tmp_path / "image.png", rgb)
    expected = tf.image.resize(rgb, SIZE, method="bilinear", antialias=True).numpy()
    np.testing.assert_allclose(load_image(path, SIZE).numpy(), expected, atol=1e-3)
    as_uint8 = load_image(path, SIZE, tf.uint8).numpy()
    assert as_uint8.dtype == np.uint8
    np.testing.assert_array_equal(as_uint8, np.round(expected).astype(np.uint8))
