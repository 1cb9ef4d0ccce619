"""Market-1501 reader (Zheng et al., "Scalable Person Re-identification: A Benchmark", ICCV 2015).

`root` is the extracted `Market-1501-v15.09.15/` folder or its parent. Also reads
data written by `msreid synth`, checked against the counts it records.

Example:

```python
dataset = load_market1501("/data/market1501")
dataset.num_train_pids  # 751
```
"""

from keras_msreid.datasets.counts import ExpectedCounts
from keras_msreid.datasets.market_style import load_market_release

RELEASE_FOLDER = "Market-1501-v15.09.15"
# Gallery after dropping junk (-1); the 0000 distractors stay in it.
PUBLISHED_COUNTS = ExpectedCounts(
    train_ids=751, train_images=12936, query_images=3368, gallery_images=15913
)


def load_market1501(root):
    """Reads Market-1501 into a `ReIDDataset` (junk dropped, train ids relabelled)."""
    return load_market_release("market1501", root, RELEASE_FOLDER, PUBLISHED_COUNTS)
