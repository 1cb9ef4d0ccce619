"""Hand-crafted baselines that a trained network must beat (numpy + OpenCV only).

Example:

```python
from keras_msreid.baselines import color_histogram_features, histogram_distance

distmat = histogram_distance(color_histogram_features(queries), color_histogram_features(gallery))
```
"""

from keras_msreid.baselines.color_histogram import METRICS, color_histogram_features, histogram_distance
