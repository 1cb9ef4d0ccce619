"""Generic reader for any folder in the Market-1501 layout, without published counts.

Use it for your own data exported as `bounding_box_train/`, `query/` and
`bounding_box_test/` with names like `0002_c1_0001.jpg`. Data written by
`msreid synth` is still checked against the counts it records.

Example:

```python
dataset = load_folder("/data/my_cameras")
```
"""

import os

from keras_msreid.datasets.base import ReIDDataset, require_dir
from keras_msreid.datasets.counts import check_counts
from keras_msreid.datasets.market_style import LAYOUT, read_market_layout


def load_folder(root):
    """Reads a Market-style folder into a `ReIDDataset` (train ids relabelled)."""
    root = os.path.abspath(root)
    require_dir(root, f"{root}/ containing {LAYOUT}")
    dataset = ReIDDataset("folder", root, *read_market_layout(root))
    check_counts(dataset, None, search_dirs=[root])
    return dataset
