"""Images for calibration and validation, read from a ReID dataset on disk.

Example:

>>> dataset = build_dataset("cuhk01", "/data/cuhk01")
>>> images, ids = calibration_set(dataset.train, (160, 64), count=200, seed=0)
>>> images, ids = identity_set(dataset.query + dataset.gallery, (160, 64), count=400, seed=0)
"""

import numpy as np

from keras_msreid.errors import UserError


def load_images(records, image_size, batch_size=64):
    """RGB float32 images `(N, H, W, 3)` in [0, 255], resized as the training pipeline does."""
    from keras_msreid.data import make_eval_dataset

    return np.concatenate(
        [batch.numpy() for batch in make_eval_dataset(records, image_size, batch_size)], axis=0
    )


def calibration_set(records, image_size, count, seed=0):
    """`count` records drawn at random (all if fewer), loaded; returns `(images, ids)`."""
    if count < 1:
        raise UserError(f"calibration count must be >= 1, got {count}")
    records = list(records)
    if not records:
        raise UserError("no images to calibrate on: the dataset split is empty")
    chosen = np.sort(np.random.default_rng(seed).permutation(len(records))[:count])
    picked = [records[i] for i in chosen]
    return load_images(picked, image_size), np.array([r.pid for r in picked])


def identity_set(records, image_size, count, seed=0):
    """All images of identities drawn at random until about `count` images; `(images, ids)`.

    Whole identities, so that the set holds same-identity pairs (for the match
    threshold) even when the split has many identities. Ids below 1 (Market-style
    distractors 0 and junk -1) are left out: their images are not one person.
    """
    if count < 2:
        raise UserError(f"threshold image count must be >= 2, got {count}")
    by_id = {}
    for record in records:
        if record.pid > 0:
            by_id.setdefault(record.pid, []).append(record)
    ids = sorted(by_id)
    picked = []
    for index in np.random.default_rng(seed).permutation(len(ids)):
        if len(picked) >= count:
            break
        picked.extend(by_id[ids[index]])
    if not picked:
        raise UserError("no images for the match threshold: the dataset's query and gallery are empty")
    return load_images(picked, image_size), np.array([r.pid for r in picked])
