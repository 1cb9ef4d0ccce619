"""MSMT17 reader (Wei et al., "Person Transfer GAN...", CVPR 2018), releases V1 and V2.

`root` is the extracted `MSMT17_V1/` or `MSMT17_V2/` folder or its parent. Images
are listed in `list_{train,val,query,gallery}.txt`, one `relative/path.jpg pid` per
line, relative to `train/` and `test/` (V1) or `mask_train_v2/` and `mask_test_v2/`
(V2, faces blurred). The camera is the third `_` field of the file name
(`0000_000_01_0303morning_0015_0.jpg` is camera 01). Train and val are merged into
the training split, as the published 32,621 training images count them.

Example:

```python
dataset = load_msmt17("/data/msmt17")
dataset.num_train_pids  # 1041
```
"""

import logging
import os

from keras_msreid.datasets.base import ImageRecord, ReIDDataset, relabel, require_dir
from keras_msreid.datasets.counts import ExpectedCounts, check_counts
from keras_msreid.errors import UserError

# Release folder -> (train image folder, test image folder).
RELEASES = {
    "MSMT17_V1": ("train", "test"),
    "MSMT17_V2": ("mask_train_v2", "mask_test_v2"),
}
PUBLISHED_COUNTS = ExpectedCounts(
    train_ids=1041, train_images=32621, query_images=11659, gallery_images=82161
)

_log = logging.getLogger("keras_msreid.datasets")


def _find_release(root):
    """(release folder, train folder, test folder) under or at `root`."""
    for release_dir in (root, *(os.path.join(root, name) for name in RELEASES)):
        for train_name, test_name in RELEASES.values():
            if os.path.isdir(os.path.join(release_dir, train_name)):
                return (
                    release_dir,
                    os.path.join(release_dir, train_name),
                    os.path.join(release_dir, test_name),
                )
    raise FileNotFoundError(
        f"No MSMT17 release found in {root}. Expected layout: {root}/MSMT17_V1/ (or "
        f"MSMT17_V2/, or {root}/ itself) holding list_train.txt, list_val.txt, "
        "list_query.txt, list_gallery.txt and train/ + test/ (V2: mask_train_v2/ + "
        "mask_test_v2/)"
    )


def _parse_list_line(fields, image_dir):
    """The record of one list line split into fields, or None if it does not parse."""
    if len(fields) != 2:
        return None
    relative_path, pid = fields
    try:
        camera = int(os.path.basename(relative_path).split("_")[2])
        pid = int(pid)
    except (IndexError, ValueError):
        return None
    if camera < 1:
        return None
    return ImageRecord(os.path.join(image_dir, relative_path), pid, camera - 1)


def _read_list(list_path, image_dir):
    """Records of one list file; malformed lines are logged and skipped."""
    if not os.path.isfile(list_path):
        raise FileNotFoundError(f"MSMT17 list file not found: {list_path}")
    records = []
    with open(list_path, encoding="utf-8") as file:
        for line_number, line in enumerate(file, start=1):
            fields = line.split()
            if not fields:
                continue
            record = _parse_list_line(fields, image_dir)
            if record is None:
                _log.warning(
                    "Skipping line %d of %s: expected 'relative/path.jpg pid' with a file "
                    "name like 0000_000_01_0303morning_0015_0.jpg, got %r",
                    line_number,
                    list_path,
                    line.rstrip("\n"),
                )
                continue
            records.append(record)
    if not records:
        raise UserError(f"No usable entries in {list_path}")
    return records


def load_msmt17(root):
    """Reads MSMT17 into a `ReIDDataset` (train + val merged, train ids relabelled)."""
    root = os.path.abspath(root)
    require_dir(root, f"{root}/MSMT17_V1/ or {root}/MSMT17_V2/")
    release_dir, train_dir, test_dir = _find_release(root)
    require_dir(test_dir, f"{release_dir}/ holding the test image folder {test_dir}")

    def read(split, image_dir):
        return _read_list(os.path.join(release_dir, f"list_{split}.txt"), image_dir)

    train = relabel(read("train", train_dir) + read("val", train_dir))
    dataset = ReIDDataset(
        "msmt17", release_dir, train, read("query", test_dir), read("gallery", test_dir)
    )
    check_counts(dataset, PUBLISHED_COUNTS, search_dirs=[release_dir, root])
    return dataset
