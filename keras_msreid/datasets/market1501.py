"""Market-1501 reader (Zheng et al., "Scalable Person Re-identification: A Benchmark", ICCV 2015).

`root` is the extracted `Market-1501-v15.09.15/` folder or its parent. Also reads
data written by `msreid synth`, checked against the counts it records.

Example:

```python
dataset = load_market1501("/data/market1501")
dataset.num_train_pids  # 751
```
"""

import os

from keras_msreid.datasets.base import ReIDDataset, find_release_dir
from keras_msreid.datasets.counts import ExpectedCounts, check_counts
from keras_msreid.datasets.market_style import LAYOUT, read_market_layout

RELEASE_FOLDER = "Market-1501-v15.09.15"
# Gallery after dropping junk (-1); the 0000 distractors stay in it.
PUBLISHED_COUNTS = ExpectedCounts(
    train_ids=751, train_images=12936, query_images=3368, gallery_images=15913
)


def load_market1501(root):
    """Reads Market-1501 into a `ReIDDataset` (junk dropped, train ids relabelled)."""
    root = os.path.abspath(root)
    layout = f"{root}/{RELEASE_FOLDER}/ (or {root}/) containing {LAYOUT}"
    data_dir = find_release_dir(root, RELEASE_FOLDER, layout)
    dataset = ReIDDataset("market1501", data_dir, *read_market_layout(data_dir))
    check_counts(dataset, PUBLISHED_COUNTS, search_dirs=[data_dir, root])
    return dataset
