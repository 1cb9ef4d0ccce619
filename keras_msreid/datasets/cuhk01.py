"""CUHK01 reader (Li et al., "Human Reidentification with Transferred Metric Learning", ACCV 2012).

971 identities seen by two cameras of a campus, 4 images each, named `PPPPNNN.png`:
identity `PPPP`, image `NNN` 001-002 from camera A (camid 0) and 003-004 from
camera B (camid 1). `root` is the `campus/` folder of the original archive, its
parent, or any folder of such files.

Protocol: the identities are split at random (seeded) into `num_test_ids` test
identities (100 or 486 in the literature) and training identities (871 or 485).
Training uses all 4 images of its identities, relabelled; camera A images of the
test identities are the queries, camera B images the gallery.

Example:

```python
dataset = load_cuhk01("/data/cuhk01", num_test_ids=100, split_seed=0)
dataset.num_train_pids, len(dataset.query), len(dataset.gallery)  # 871, 200, 200
```
"""

import logging
import os
import re

import numpy as np

from keras_msreid.datasets.base import (
    ImageRecord,
    ReIDDataset,
    find_release_dir,
    is_image_file,
    relabel,
)
from keras_msreid.datasets.counts import ExpectedCounts, check_counts
from keras_msreid.errors import UserError

RELEASE_FOLDER = "campus"
PUBLISHED_IDS = 971
IMAGES_PER_ID = 4
_NAME_PATTERN = re.compile(r"^(\d{4})(00[1-4])\.[a-z]+$", re.IGNORECASE)
_log = logging.getLogger("keras_msreid.datasets")


def _read_images(image_dir):
    """Records of every CUHK01 image in `image_dir` with original identity ids."""
    records = []
    for name in sorted(os.listdir(image_dir)):
        path = os.path.join(image_dir, name)
        if not is_image_file(name) or not os.path.isfile(path):
            continue
        match = _NAME_PATTERN.match(name)
        if match is None:
            _log.warning(
                "Skipping %s: the file name does not follow the CUHK01 pattern PPPPNNN.png "
                "with image NNN in 001-004 (e.g. 0001003.png)",
                path,
            )
            continue
        camid = (int(match.group(2)) - 1) // 2
        records.append(ImageRecord(path, int(match.group(1)), camid))
    if not records:
        raise UserError(f"No CUHK01 images (named like 0001001.png) in {image_dir}")
    return records


def load_cuhk01(root, num_test_ids=100, split_seed=0, validation_ids=0):
    """Reads CUHK01 and splits its identities by `split_seed` into a `ReIDDataset`.

    With `validation_ids` > 0, that many identities are carved (seeded) out of the
    training identities and become the query (camera A) and gallery (camera B); the
    test identities are left out altogether. Tune on that split, never on the test one.
    """
    root = os.path.abspath(root)
    layout = f"{root}/{RELEASE_FOLDER}/ (or {root}/) holding images named like 0001001.png"
    image_dir = find_release_dir(root, RELEASE_FOLDER, layout)
    records = _read_images(image_dir)
    pids = sorted({r.pid for r in records})
    if not 0 < num_test_ids < len(pids):
        raise UserError(
            f"num_test_ids must be between 1 and {len(pids) - 1} for the {len(pids)} "
            f"identities in {image_dir}, got {num_test_ids}"
        )
    rng = np.random.default_rng(split_seed)
    test_ids = set(rng.choice(pids, size=num_test_ids, replace=False).tolist())
    held_out = test_ids
    if validation_ids:
        train_ids = sorted(set(pids) - test_ids)
        if not 0 < validation_ids < len(train_ids) - 1:
            raise UserError(f"validation_ids must be between 1 and {len(train_ids) - 2} (the training identities "
                            f"less two), got {validation_ids}")
        held_out = set(rng.choice(train_ids, size=validation_ids, replace=False).tolist())
    train = relabel([r for r in records if r.pid not in test_ids | held_out])
    query = [r for r in records if r.pid in held_out and r.camid == 0]
    gallery = [r for r in records if r.pid in held_out and r.camid == 1]
    if not query or not gallery:
        raise UserError(
            f"Split seed {split_seed} of {image_dir} leaves no camera "
            f"{'A' if not query else 'B'} image of the {num_test_ids} test identities"
        )
    dataset = ReIDDataset("cuhk01", image_dir, train, query, gallery, protocol="cuhk01")
    num_train_ids = PUBLISHED_IDS - num_test_ids - validation_ids
    published = ExpectedCounts(
        train_ids=num_train_ids,
        train_images=IMAGES_PER_ID * num_train_ids,
        query_images=IMAGES_PER_ID // 2 * len(held_out),
        gallery_images=IMAGES_PER_ID // 2 * len(held_out),
    )
    check_counts(dataset, published, search_dirs=[image_dir, root])
    return dataset
