"""CUHK03 reader, new protocol of Zhong et al. (CVPR 2017), in its Market-style export.

`root` holds `cuhk03-np/` (or is that folder), with `labeled/` and `detected/` each
in the Market-1501 layout: 767 training and 700 test identities, two cameras.

Example:

```python
dataset = load_cuhk03("/data/cuhk03", variant="detected")
dataset.num_train_imgs  # 7365
```
"""

import os

from keras_msreid.datasets.base import ReIDDataset, find_release_dir, require_dir
from keras_msreid.datasets.counts import ExpectedCounts, check_counts
from keras_msreid.datasets.market_style import LAYOUT, read_market_layout
from keras_msreid.errors import UserError

RELEASE_FOLDER = "cuhk03-np"
PUBLISHED_COUNTS = {
    "labeled": ExpectedCounts(
        train_ids=767, train_images=7368, query_images=1400, gallery_images=5328
    ),
    "detected": ExpectedCounts(
        train_ids=767, train_images=7365, query_images=1400, gallery_images=5332
    ),
}


def load_cuhk03(root, variant="labeled"):
    """Reads the `variant` ("labeled" or "detected") boxes of CUHK03-NP into a `ReIDDataset`."""
    if variant not in PUBLISHED_COUNTS:
        raise UserError(
            f"Unknown CUHK03 variant {variant!r}: expected one of {sorted(PUBLISHED_COUNTS)}"
        )
    root = os.path.abspath(root)
    layout = f"{root}/{RELEASE_FOLDER}/{variant}/ (or {root}/{variant}/) containing {LAYOUT}"
    release_dir = find_release_dir(root, RELEASE_FOLDER, layout)
    data_dir = os.path.join(release_dir, variant)
    require_dir(data_dir, layout)
    dataset = ReIDDataset(f"cuhk03_{variant}", data_dir, *read_market_layout(data_dir))
    check_counts(dataset, PUBLISHED_COUNTS[variant], search_dirs=[data_dir, root])
    return dataset
