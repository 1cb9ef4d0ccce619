"""Readers of person re-identification datasets into train / query / gallery records.

Every reader parses one on-disk layout; `build_dataset` picks one by name.
TensorFlow-free (numpy and OpenCV only), so the edge demo can reuse it.

Example:

```python
from keras_msreid.datasets import build_dataset

dataset = build_dataset("cuhk01", "/data/cuhk01", num_test_ids=100, split_seed=0)
print(dataset.summary())
dataset = build_dataset("market1501", "/data/market1501", check_files=True)
```
"""

import inspect

from keras_msreid.datasets.base import ImageRecord, ReIDDataset, relabel
from keras_msreid.datasets.cuhk01 import load_cuhk01
from keras_msreid.datasets.cuhk03 import load_cuhk03
from keras_msreid.datasets.dukemtmc import load_dukemtmc
from keras_msreid.datasets.folder import load_folder
from keras_msreid.datasets.image_check import check_images
from keras_msreid.datasets.market1501 import load_market1501
from keras_msreid.datasets.msmt17 import load_msmt17
from keras_msreid.errors import UserError

DATASETS = {
    "market1501": load_market1501,
    "dukemtmc": load_dukemtmc,
    "msmt17": load_msmt17,
    "cuhk03": load_cuhk03,
    "cuhk01": load_cuhk01,
    "folder": load_folder,
}


def build_dataset(name, root, *, check_files=False, **kwargs):
    """Reads the dataset `name` (a key of `DATASETS`) stored at `root`.

    Args:
        name: dataset name, e.g. "market1501".
        root: folder holding the dataset.
        check_files: decode every image once first (`check_images`) and drop
            missing or corrupt files, so that they cannot stop training later;
            training ids stay contiguous.
        **kwargs: reader options, e.g. `variant` for "cuhk03", `num_test_ids`
            and `split_seed` for "cuhk01".
    """
    if name not in DATASETS:
        raise UserError(f"Unknown dataset {name!r}: expected one of {', '.join(DATASETS)}")
    options = list(inspect.signature(DATASETS[name]).parameters)[1:]
    unknown = sorted(set(kwargs) - set(options))
    if unknown:
        raise UserError(
            f"Dataset {name!r} has no option {', '.join(unknown)}; "
            f"its options: {', '.join(options) or 'none'}"
        )
    dataset = DATASETS[name](root, **kwargs)
    if check_files:
        for split in ("train", "query", "gallery"):
            records = check_images(getattr(dataset, split))
            if not records:
                raise UserError(f"No image of the {split} split of {dataset.root} decodes")
            setattr(dataset, split, records)
        dataset.train = relabel(dataset.train)
    return dataset


__all__ = [
    "DATASETS",
    "ImageRecord",
    "ReIDDataset",
    "build_dataset",
    "check_images",
]
