"""Decodes every image of a record list once, so that bad files fail before training.

A file that is missing or does not decode is reported with its path and dropped;
a grayscale or RGBA file is kept (the input pipeline decodes to 3 channels) but
reported once. Runs with OpenCV in a thread pool (decoding releases the GIL), so
a 30k-image dataset is checked in seconds, without TensorFlow.

Example:

```python
from keras_msreid.datasets import build_dataset, check_images

dataset = build_dataset("market1501", "/data/market1501")
train = check_images(dataset.train)
```
"""

import concurrent.futures
import logging
import os

import cv2
import numpy as np

# Problems that drop a file, with the reason logged.
_DROPPED = {
    "missing": "the file does not exist",
    "corrupt": "the file is not a decodable image (corrupt or truncated)",
}


def _inspect(path):
    """One of "ok", "missing", "corrupt", "grayscale", "RGBA" for the file at `path`."""
    if not os.path.isfile(path):
        return "missing"
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError:
        return "corrupt"
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        return "corrupt"
    if image.ndim == 2 or image.shape[2] == 1:
        return "grayscale"
    if image.shape[2] == 4:
        return "RGBA"
    return "ok"


def check_images(records, *, log=logging.getLogger("keras_msreid.datasets"), num_threads=None):
    """Returns the records whose files decode, in order; logs every file it drops or converts.

    Args:
        records: `ImageRecord`s (anything with a `.path`); a path listed twice is
            decoded once.
        log: logger receiving one warning per bad file and a final count.
        num_threads: decoding threads; default: the number of CPU cores (at least 2).
    """
    paths = list(dict.fromkeys(r.path for r in records))
    workers = num_threads or max(2, os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        status = dict(zip(paths, pool.map(_inspect, paths)))
    for path, state in status.items():
        if state in _DROPPED:
            log.warning("Skipping %s: %s", path, _DROPPED[state])
        elif state != "ok":
            log.warning("%s is %s, converted to RGB when loaded", path, state)
    kept = [r for r in records if status[r.path] not in _DROPPED]
    skipped = len(records) - len(kept)
    log.log(
        logging.WARNING if skipped else logging.INFO,
        "%d of %d images skipped as missing or corrupt",
        skipped,
        len(records),
    )
    return kept
