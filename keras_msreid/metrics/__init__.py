"""Pure-numpy ReID evaluation: distances, CMC / mAP / mINP protocols and re-ranking.

```python
from keras_msreid.metrics import evaluate_ranking, pairwise_distance

distmat = pairwise_distance(query_features, gallery_features, metric="cosine")
print(evaluate_ranking(distmat, q_pids, g_pids, q_camids, g_camids).as_dict())
```

`re_ranking` (k-reciprocal, Zhong et al. 2017) turns query-gallery, query-query and
gallery-gallery distances into a re-ranked query-gallery matrix for `evaluate_ranking`.
None of these modules imports TensorFlow.
"""

from keras_msreid.metrics.distance import METRICS, pairwise_distance
from keras_msreid.metrics.ranking import PROTOCOLS, RankingResult, evaluate_ranking
from keras_msreid.metrics.reranking import re_ranking
