"""Checks the size of a loaded dataset against its published (or generated) counts.

A dataset copied incompletely, or a different release of it, loads without error but
gives results that cannot be compared with the literature; a warning naming each
count that differs makes that visible. Data written by `msreid synth` carries its
own counts in `msreid_synthetic.json`, which take precedence over published ones.

Example:

```python
check_counts(dataset, ExpectedCounts(751, 12936, 3368, 15913), search_dirs=[root])
```
"""

import json
import os
import warnings
from typing import NamedTuple

from keras_msreid.errors import UserError

SYNTHETIC_MANIFEST = "msreid_synthetic.json"
SYNTHETIC_GENERATOR = "keras_msreid.synthetic"


class ExpectedCounts(NamedTuple):
    """Identities and images of the training split, images of query and gallery."""

    train_ids: int
    train_images: int
    query_images: int
    gallery_images: int


def load_synthetic_manifest(path):
    """The `ExpectedCounts` stored in a `msreid_synthetic.json` file."""
    try:
        with open(path, encoding="utf-8") as file:
            manifest = json.load(file)
        if manifest.get("generator") != SYNTHETIC_GENERATOR:
            raise UserError(f"'generator' is not {SYNTHETIC_GENERATOR!r}")
        counts = manifest["counts"]
        return ExpectedCounts(**{field: int(counts[field]) for field in ExpectedCounts._fields})
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise UserError(f"Invalid synthetic dataset manifest {path}: {error!r}") from error


def check_counts(dataset, published, search_dirs):
    """Warns naming each count of `dataset` that differs from the expected one.

    The expected counts come from the first `msreid_synthetic.json` found in
    `search_dirs`, else from `published`; with neither there is nothing to check.
    """
    manifests = [os.path.join(d, SYNTHETIC_MANIFEST) for d in search_dirs]
    manifest = next((path for path in manifests if os.path.isfile(path)), None)
    if manifest is not None:
        expected, source = load_synthetic_manifest(manifest), manifest
    elif published is not None:
        expected, source = published, f"the published {dataset.name} counts"
    else:
        return
    found = ExpectedCounts(
        dataset.num_train_pids, dataset.num_train_imgs, len(dataset.query), len(dataset.gallery)
    )
    differences = [
        f"{field} expected {want}, found {got}"
        for field, want, got in zip(ExpectedCounts._fields, expected, found)
        if want != got
    ]
    if differences:
        warnings.warn(
            f"{dataset.name} at {dataset.root} does not match {source}: "
            + "; ".join(differences),
            stacklevel=2,
        )
