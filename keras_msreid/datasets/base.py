"""Records and the dataset container shared by every ReID dataset reader.

A reader turns an on-disk layout into three lists of `ImageRecord`: `train`
(person ids relabelled to 0..num_train_pids-1, ready for a classification head),
`query` and `gallery` (original person ids, so that query and gallery ids match).

Example:

```python
from keras_msreid.datasets import build_dataset

dataset = build_dataset("market1501", "/data/market1501")
print(dataset.summary())
path, pid, camid = dataset.train[0]
```
"""

import dataclasses
import os
from typing import NamedTuple

# Extensions every decoder of the project (cv2 here, tf.io.decode_image in the
# input pipeline) understands; anything else in a split folder is not an image.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


class ImageRecord(NamedTuple):
    """One image: absolute file path, person id and 0-based camera index."""

    path: str
    pid: int
    camid: int


def is_image_file(name):
    """Whether a file name has one of the `IMAGE_EXTENSIONS` (case-insensitive)."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


def relabel(records):
    """Maps the person ids of `records` to 0..N-1 in increasing order of the old id."""
    label_of = {pid: label for label, pid in enumerate(sorted({r.pid for r in records}))}
    return [r._replace(pid=label_of[r.pid]) for r in records]


def require_dir(path, layout):
    """Raises FileNotFoundError naming `path` and the expected `layout` unless it is a folder."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"Dataset folder not found: {path}. Expected layout: {layout}")


def find_release_dir(root, release_folder, layout):
    """`root/release_folder` when the archive was extracted under `root`, else `root` itself."""
    root = os.path.abspath(root)
    require_dir(root, layout)
    release_dir = os.path.join(root, release_folder)
    return release_dir if os.path.isdir(release_dir) else root


@dataclasses.dataclass
class ReIDDataset:
    """Train, query and gallery records of one dataset, with torchreid-style statistics."""

    name: str
    root: str
    train: list
    query: list
    gallery: list
    # How its query and gallery are scored (`keras_msreid.metrics.ranking.PROTOCOLS`):
    # what every command uses unless told otherwise.
    protocol: str = "market1501"

    @staticmethod
    def _stats(records):
        return (
            len({r.pid for r in records}),
            len(records),
            len({r.camid for r in records}),
        )

    @property
    def num_train_pids(self):
        return self._stats(self.train)[0]

    @property
    def num_train_imgs(self):
        return len(self.train)

    @property
    def num_train_cams(self):
        return self._stats(self.train)[2]

    @property
    def num_query_pids(self):
        return self._stats(self.query)[0]

    @property
    def num_query_imgs(self):
        return len(self.query)

    @property
    def num_query_cams(self):
        return self._stats(self.query)[2]

    @property
    def num_gallery_pids(self):
        return self._stats(self.gallery)[0]

    @property
    def num_gallery_imgs(self):
        return len(self.gallery)

    @property
    def num_gallery_cams(self):
        return self._stats(self.gallery)[2]

    def summary(self):
        """A table of identities, images and cameras per split, as torchreid prints it."""
        rule = "  " + "-" * 40
        lines = [
            f"=> Loaded {self.name} from {self.root}",
            rule,
            "  subset   | # ids | # images | # cameras",
            rule,
        ]
        for split in ("train", "query", "gallery"):
            pids, images, cams = self._stats(getattr(self, split))
            lines.append(f"  {split:<8} | {pids:5d} | {images:8d} | {cams:9d}")
        lines.append(rule)
        return "\n".join(lines)
