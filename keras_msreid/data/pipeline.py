"""`tf.data` input pipelines: PK-sampled augmented training batches and evaluation batches.

Pixels are float32 RGB in [0, 255]; the model normalises internally, so the exported
model takes the same uint8 pixels a camera gives.

Training: the `PKSampler` orders record indices one epoch at a time (a new order each
epoch, forever: pass `steps_per_epoch(records, p, k)` to `model.fit`). Each PK batch
decodes its images (decode + resize per image, batches in parallel) to uint8, then
augments the whole batch at once and hands float32 to the model: the batch crosses
the pipeline at a quarter of the float32 size. `cache_decoded=True` decodes every image
once up front instead (small sets, slow formats).

Corrupt files: the dataset readers check images up front; as a second net a file
that fails to decode mid-training is logged and dropped (`ignore_errors`) and its slot
in the batch is refilled with another decoded image of the same identity (or, if none
of that identity survived, with another image of the batch, labelled with its own
identity), so every batch keeps exactly p * k images and its labels stay correct.

Example:

```python
train = make_train_dataset(train_records, image_size=(160, 64), p=16, k=4)
model.fit(train, steps_per_epoch=steps_per_epoch(train_records, p=16, k=4), epochs=60)
query_images = make_eval_dataset(query_records)     # order kept, no augmentation
```
"""

import sys

import numpy as np
import tensorflow as tf

from keras_msreid.data.augment import AugmentConfig, augment_batch
from keras_msreid.data.pk_sampler import PKSampler
from keras_msreid.errors import UserError

AUTOTUNE = tf.data.AUTOTUNE


def load_image(path, image_size, dtype=tf.float32):
    """Read a JPEG/PNG/BMP/GIF file as RGB `(H, W, 3)` in [0, 255].

    Grayscale and RGBA files become RGB; the image is resized (bilinear, antialiased)
    to `image_size = (height, width)`. `dtype` float32 keeps the resize exact; uint8
    rounds it, which the training pipeline uses to move four times fewer bytes.
    """
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    size = tf.shape(image)[:2]
    target = tf.constant(image_size)
    # Antialiasing only changes a downscale, and its kernel is about twice as slow,
    # so an upscale (Market 128x64 -> 160x64) takes the plain bilinear kernel.
    image = tf.cond(
        tf.reduce_all(size <= target),
        lambda: tf.image.resize(image, image_size, method="bilinear"),
        lambda: tf.image.resize(image, image_size, method="bilinear", antialias=True),
    )
    if dtype == tf.uint8:
        # Bilinear weights are convex, so the result is already inside [0, 255].
        return tf.cast(tf.round(image), tf.uint8)
    return tf.cast(image, dtype)


def steps_per_epoch(records, p=16, k=4):
    """Batches in one PK epoch of `records` (the value for `model.fit(steps_per_epoch=)`)."""
    return PKSampler([record.pid for record in records], p, k).batches_per_epoch


def make_train_dataset(
    records,
    image_size=(160, 64),
    p=16,
    k=4,
    augment=AugmentConfig(),
    seed=0,
    num_parallel_calls=AUTOTUNE,
    deterministic=False,
    start_batch=0,
    cache_decoded=False,
):
    """Infinite dataset of `(images (p*k, H, W, 3) float32, labels (p*k,) int32)`.

    Args:
        records: sequence of objects with `.path` and `.pid` (e.g. `ImageRecord`).
        image_size: (height, width) of the output images.
        p, k: identities per batch and images per identity.
        augment: an `AugmentConfig`, or None for no augmentation.
        seed: seeds the PK order and the augmentation; batch `i` of the stream
            has the same content for the same seed.
        num_parallel_calls: parallelism of decoding and augmentation.
        deterministic: keep batch order fixed. False lets a fast batch overtake a
            slow one (content per batch is unchanged, only the order may differ).
        start_batch: index of the first batch of the stream, to resume a killed
            run where it stopped (earlier batches are skipped before decoding).
        cache_decoded: decode and resize every image once, up front, and keep them
            in memory as uint8 (H * W * 3 bytes each: 30 KB at 160x64, 0.4 GB for
            Market-1501's 12,936 training images). Worth it for small sets and slow
            formats (CUHK01 PNGs). Files that fail to decode are reported and left
            out of the sampler (epochs may then be a step shorter than
            `steps_per_epoch(records)`; the stream is endless, so that is harmless).
    """
    records = list(records)
    if not records:
        raise ValueError("make_train_dataset got no records.")
    image_size = _check_image_size(image_size)
    if cache_decoded:
        if tf.distribute.has_strategy():
            raise ValueError(
                "make_train_dataset(cache_decoded=True) must be called outside a "
                "tf.distribute strategy scope, or the image cache is mirrored to every device."
            )
        records, decoded = _decode_all(records, image_size, num_parallel_calls)
    sampler = PKSampler([record.pid for record in records], p, k, seed)
    labels = tf.constant([record.pid for record in records], tf.int32)
    batches = _pk_batches(sampler, start_batch)
    if cache_decoded:
        batches = batches.map(
            lambda step, indices: (step, tf.gather(decoded, indices), tf.gather(labels, indices))
        )
    else:
        batches = _decoded_from_files(batches, records, labels, image_size, sampler.batch_size,
                                      num_parallel_calls, deterministic)

    def augment_step(step, images, batch_labels):
        if augment is None:
            return tf.cast(images, tf.float32), batch_labels
        step_seed = tf.stack([tf.cast(seed, tf.int64), step])
        return augment_batch(images, step_seed, augment), batch_labels

    return batches.map(
        augment_step, num_parallel_calls=num_parallel_calls, deterministic=deterministic
    ).prefetch(AUTOTUNE)


def _pk_batches(sampler, start_batch):
    """Endless `(step, indices (batch_size,))` of the sampler's epochs, from batch `start_batch` on."""

    def epoch_batches(epoch_index):
        indices = tf.numpy_function(sampler.epoch, [epoch_index], tf.int64, stateful=False)
        indices = tf.ensure_shape(indices, [sampler.batches_per_epoch, sampler.batch_size])
        return tf.data.Dataset.from_tensor_slices(indices)

    return tf.data.Dataset.counter().flat_map(epoch_batches).enumerate().skip(start_batch)


def _decoded_from_files(batches, records, labels, image_size, batch_size, num_parallel_calls, deterministic):
    """`(step, uint8 images, labels)` per batch, decoded from the files; a corrupt image is refilled."""
    paths = tf.constant([str(record.path) for record in records])

    def decode_batch(step, indices):
        # One inner dataset per PK batch, so that dropping a corrupt image cannot
        # shift images into the next batch.
        decoded = (
            tf.data.Dataset.from_tensor_slices(indices)
            .map(lambda index: (load_image(paths[index], image_size, tf.uint8), index))
            .ignore_errors(log_warning=True)
            .batch(batch_size)
        )
        return decoded.map(
            lambda images, got: (step, *_refill(images, got, indices, labels, paths))
        )

    return batches.interleave(
        decode_batch,
        cycle_length=None if num_parallel_calls == AUTOTUNE else num_parallel_calls,
        num_parallel_calls=num_parallel_calls,
        deterministic=deterministic,
    )


def _decode_all(records, image_size, num_parallel_calls):
    """(records that decoded, a uint8 variable holding their images in that order)."""
    paths = [str(record.path) for record in records]
    decoded = (
        tf.data.Dataset.from_tensor_slices(paths)
        .enumerate()
        .map(
            lambda index, path: (index, load_image(path, image_size, tf.uint8)),
            num_parallel_calls=num_parallel_calls,
        )
        .ignore_errors(log_warning=True)
        .batch(256)
    )
    kept, images = [], []
    for batch_indices, batch_images in decoded:
        kept.extend(batch_indices.numpy().tolist())
        images.append(batch_images.numpy())
    lost = sorted(set(range(len(paths))) - set(kept))
    if lost:
        _report_skipped(tf.constant([paths[index] for index in lost]))
    if not kept:
        raise UserError(f"make_train_dataset: none of the {len(paths)} images could be decoded.")
    # A variable is captured by handle, so the pixels are not serialised into the dataset
    # graph as a constant would be (seconds and a second copy for a Market-sized cache).
    # tf.data runs on the host: keep it there even when a GPU is visible.
    with tf.device("/CPU:0"):
        cache = tf.Variable(np.concatenate(images), trainable=False)
    return [records[index] for index in kept], cache


def _refill(images, got, wanted, labels, paths):
    """Batch of len(wanted) images and labels from the decoded subset `got` of `wanted`."""
    same_record = tf.equal(wanted[:, None], got[None, :])
    lost = tf.unique(tf.boolean_mask(wanted, ~tf.reduce_any(same_record, axis=1)))[0]
    # ignore_errors logs the decoder's message but not the file; name the files here.
    tf.cond(tf.size(lost) > 0, lambda: _report_skipped(tf.gather(paths, lost)), tf.no_op)
    same_label = tf.equal(tf.gather(labels, wanted)[:, None], tf.gather(labels, got)[None, :])
    fallback = tf.range(tf.size(wanted)) % tf.size(got)
    source = tf.where(
        tf.reduce_any(same_record, axis=1),
        tf.argmax(tf.cast(same_record, tf.int32), axis=1, output_type=tf.int32),
        tf.where(
            tf.reduce_any(same_label, axis=1),
            tf.argmax(tf.cast(same_label, tf.int32), axis=1, output_type=tf.int32),
            fallback,
        ),
    )
    return tf.gather(images, source), tf.gather(labels, tf.gather(got, source))


def _report_skipped(paths):
    return tf.print(
        "keras_msreid: skipped unreadable images:", paths, output_stream=sys.stderr, summarize=-1
    )


def make_eval_dataset(records_or_paths, image_size=(160, 64), batch_size=128):
    """Batches of float32 RGB images in [0, 255], in input order, last partial batch kept.

    `records_or_paths`: objects with `.path` or plain path strings. Files are expected
    to be checked by the dataset reader: a corrupt file stops iteration with an error
    rather than silently misaligning images and identities.
    """
    paths = [str(getattr(item, "path", item)) for item in records_or_paths]
    if not paths:
        raise ValueError("make_eval_dataset got no images.")
    if batch_size < 1:
        raise ValueError(f"make_eval_dataset batch_size must be >= 1, got {batch_size}.")
    image_size = _check_image_size(image_size)
    return (
        tf.data.Dataset.from_tensor_slices(paths)
        .map(lambda path: load_image(path, image_size), num_parallel_calls=AUTOTUNE)
        .batch(batch_size)
        .prefetch(AUTOTUNE)
    )


def _check_image_size(image_size):
    if len(image_size) != 2 or min(image_size) < 1:
        raise ValueError(f"image_size must be (height, width) of positive ints, got {image_size}.")
    return tuple(int(size) for size in image_size)
