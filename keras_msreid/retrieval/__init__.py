"""Retrieval at scale: feature store, embedding shortlist, exhaustive and two-stage ranking.

- `shortlist`: `EmbeddingIndex`, top-k by embedding (FAISS or numpy).
- `ranking`: `rank_exhaustive`, `rank_two_stage`, `fuse_scores` over any `ScoreFn`.
- `feature_store`: `FeatureStore`, `write_feature_store` (memory-mapped, crash-safe).
- `extract`: `extract_features`, `build_feature_store`, `keras_score_fn` (Keras).
- `evaluate`: `evaluate_model` (Keras).

Names are imported on first use, so the numpy-only modules stay TensorFlow-free.

Example:

```python
from keras_msreid.retrieval import evaluate_model
results = evaluate_model(model, dataset, ranking="two-stage", shortlist=100)
```
"""

from keras_msreid.utils.lazy_exports import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "EmbeddingIndex": "shortlist",
    "ScoreFn": "ranking",
    "embedding_similarity": "ranking",
    "fuse_scores": "ranking",
    "rank_exhaustive": "ranking",
    "rank_two_stage": "ranking",
    "FeatureStore": "feature_store",
    "write_feature_store": "feature_store",
    "build_feature_store": "extract",
    "extract_features": "extract",
    "keras_score_fn": "extract",
    "evaluate_model": "evaluate",
})
