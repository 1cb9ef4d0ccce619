"""DukeMTMC-reID reader (Zheng et al., ICCV 2017, from Ristani et al.'s DukeMTMC videos).

`root` is the extracted `DukeMTMC-reID/` folder or its parent; the layout and file
names are Market-1501's (e.g. `0001_c2_f0046182.jpg`).

Example:

```python
dataset = load_dukemtmc("/data/dukemtmc")
dataset.num_train_pids  # 702
```
"""

import os

from keras_msreid.datasets.base import ReIDDataset, find_release_dir
from keras_msreid.datasets.counts import ExpectedCounts, check_counts
from keras_msreid.datasets.market_style import LAYOUT, read_market_layout

RELEASE_FOLDER = "DukeMTMC-reID"
PUBLISHED_COUNTS = ExpectedCounts(
    train_ids=702, train_images=16522, query_images=2228, gallery_images=17661
)


def load_dukemtmc(root):
    """Reads DukeMTMC-reID into a `ReIDDataset` (train ids relabelled)."""
    root = os.path.abspath(root)
    layout = f"{root}/{RELEASE_FOLDER}/ (or {root}/) containing {LAYOUT}"
    data_dir = find_release_dir(root, RELEASE_FOLDER, layout)
    dataset = ReIDDataset("dukemtmc", data_dir, *read_market_layout(data_dir))
    check_counts(dataset, PUBLISHED_COUNTS, search_dirs=[data_dir, root])
    return dataset
