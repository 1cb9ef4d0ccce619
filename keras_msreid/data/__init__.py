"""`tf.data` input pipelines for ReID training and evaluation.

`PKSampler` (pure numpy) picks P identities x K images per batch; `augment` holds
batched augmentations; `pipeline` builds the training and evaluation datasets.
Names are imported on first use, so `keras_msreid.data.pk_sampler` stays TF-free.

Example:

```python
from keras_msreid.data import make_train_dataset, steps_per_epoch
train = make_train_dataset(records, image_size=(160, 64), p=16, k=4)
```
"""

from keras_msreid.utils.lazy_exports import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "PKSampler": "pk_sampler",
    "AugmentConfig": "augment",
    "augment_batch": "augment",
    "load_image": "pipeline",
    "make_eval_dataset": "pipeline",
    "make_train_dataset": "pipeline",
    "steps_per_epoch": "pipeline",
})
