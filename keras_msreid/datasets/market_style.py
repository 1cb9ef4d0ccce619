"""File names and split folders of the Market-1501 layout, shared by its readers.

Market-1501, DukeMTMC-reID, the CUHK03 new-protocol export and `msreid synth` all
store `bounding_box_train/`, `query/` and `bounding_box_test/` folders of images
named like `0002_c1s1_000451_03.jpg`: person id, then `c` and the 1-based camera.
Person id -1 marks junk detections (dropped everywhere) and 0000 distractors
(kept in the gallery only, where they make retrieval harder as in the benchmark).

Example:

```python
train, query, gallery = read_market_layout("/data/Market-1501-v15.09.15")
parse_market_name("0002_c1s1_000451_03.jpg")  # (2, 0)
```
"""

import logging
import os
import re

from keras_msreid.datasets.base import (
    ImageRecord,
    ReIDDataset,
    find_release_dir,
    is_image_file,
    relabel,
    require_dir,
)
from keras_msreid.datasets.counts import check_counts
from keras_msreid.errors import UserError

JUNK_PID = -1
DISTRACTOR_PID = 0
SPLIT_FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
LAYOUT = (
    "bounding_box_train/, query/ and bounding_box_test/ holding images named "
    "PPPP_cC..., e.g. 0002_c1s1_000451_03.jpg"
)

_NAME_PATTERN = re.compile(r"^(-1|\d+)_c([1-9]\d*)")
_log = logging.getLogger("keras_msreid.datasets")


def parse_market_name(filename):
    """Returns (person id, 0-based camera) of a Market-style file name, or None."""
    match = _NAME_PATTERN.match(os.path.basename(filename))
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)) - 1


def read_market_folder(folder, *, keep_distractors):
    """Records of one split folder with original person ids; junk always dropped.

    Files whose names do not parse are logged with their path and skipped;
    raises ValueError when no usable image is left.
    """
    records = []
    skipped = 0
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if not is_image_file(name) or not os.path.isfile(path):
            continue
        parsed = parse_market_name(name)
        if parsed is None:
            _log.warning(
                "Skipping %s: the file name does not follow the Market-1501 pattern "
                "PPPP_cC... (e.g. 0002_c1s1_000451_03.jpg)",
                path,
            )
            skipped += 1
            continue
        pid, camid = parsed
        if pid == JUNK_PID or (pid == DISTRACTOR_PID and not keep_distractors):
            skipped += 1
            continue
        records.append(ImageRecord(path, pid, camid))
    if not records:
        raise UserError(
            f"No usable images in {folder} ({skipped} skipped as junk, distractors or "
            f"unparsable names). Expected images named like 0002_c1s1_000451_03.jpg."
        )
    return records


def read_market_layout(data_dir):
    """(train, query, gallery) records of a Market-style folder; train ids relabelled."""
    data_dir = os.path.abspath(data_dir)
    folders = {split: os.path.join(data_dir, sub) for split, sub in SPLIT_FOLDERS.items()}
    for folder in folders.values():
        require_dir(folder, f"{data_dir}/ containing {LAYOUT}")
    train = relabel(read_market_folder(folders["train"], keep_distractors=False))
    query = read_market_folder(folders["query"], keep_distractors=False)
    gallery = read_market_folder(folders["gallery"], keep_distractors=True)
    return train, query, gallery


def load_market_release(name, root, release_folder, published_counts):
    """Reads a Market-style release found at `root/release_folder` or `root`, checking its counts."""
    root = os.path.abspath(root)
    layout = f"{root}/{release_folder}/ (or {root}/) containing {LAYOUT}"
    data_dir = find_release_dir(root, release_folder, layout)
    dataset = ReIDDataset(name, data_dir, *read_market_layout(data_dir))
    check_counts(dataset, published_counts, search_dirs=[data_dir, root])
    return dataset
