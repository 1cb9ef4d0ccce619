"""Retrieval at scale: feature store, embedding shortlist, exhaustive and two-stage ranking.

- `shortlist`: `EmbeddingIndex`, top-k by embedding (FAISS or numpy).
- `ranking`: `rank_exhaustive`, `rank_two_stage`, `fuse_scores` over any `ScoreFn`.
- `encoding`: `FeatureCodec`, `EncodedFeature` (float16 / int8 / int4 features).
- `feature_store`: `FeatureStore`, `write_feature_store`, `add_to_feature_store`,
  `remove_from_feature_store`, `compact_feature_store`, `merge_feature_stores`
  (compact, memory-mapped, appendable, mergeable, crash-safe).
- `extract`: `extract_features`, `build_feature_store`, `store_codecs`,
  `feature_extractor`, `keras_score_fn` (Keras).
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
    "FeatureCodec": "encoding",
    "EncodedFeature": "encoding",
    "FeatureStore": "feature_store",
    "write_feature_store": "feature_store",
    "add_to_feature_store": "feature_store",
    "remove_from_feature_store": "feature_store",
    "compact_feature_store": "feature_store",
    "merge_feature_stores": "feature_store",
    "build_feature_store": "extract",
    "store_codecs": "extract",
    "feature_extractor": "extract",
    "extract_features": "extract",
    "keras_score_fn": "extract",
    "evaluate_model": "evaluate",
})
