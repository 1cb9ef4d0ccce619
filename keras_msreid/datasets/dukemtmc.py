"""DukeMTMC-reID reader (Zheng et al., ICCV 2017, from Ristani et al.'s DukeMTMC videos).

`root` is the extracted `DukeMTMC-reID/` folder or its parent; the layout and file
names are Market-1501's (e.g. `0001_c2_f0046182.jpg`).

Example:

```python
dataset = load_dukemtmc("/data/dukemtmc")
dataset.num_train_pids  # 702
```
"""

from keras_msreid.datasets.counts import ExpectedCounts
from keras_msreid.datasets.market_style import load_market_release

RELEASE_FOLDER = "DukeMTMC-reID"
PUBLISHED_COUNTS = ExpectedCounts(
    train_ids=702, train_images=16522, query_images=2228, gallery_images=17661
)


def load_dukemtmc(root):
    """Reads DukeMTMC-reID into a `ReIDDataset` (train ids relabelled)."""
    return load_market_release("dukemtmc", root, RELEASE_FOLDER, PUBLISHED_COUNTS)
