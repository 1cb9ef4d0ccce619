"""Two-stage matching of one person crop against the gallery.

1. Shortlist: dot products of the crop's unit embedding with every gallery
   sample; each identity is represented by its most similar sample, and the
   `shortlist` most similar identities go on.
2. Rescoring: the scorer compares the crop's per-level features with those of
   the shortlisted samples, one query against them all. The best score is a match
   when it reaches the export's `match_threshold`. (An embedding-only export has no
   scorer: the shortlist's cosines are the scores.)

Example:

>>> matcher = Matcher(models, gallery, shortlist=5)
>>> result = matcher.match(take(features, [0]))
>>> result.identity, result.score            # identity None: nobody matched
(3, 0.91)
"""

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class MatchResult:
    identity: object  # the matched identity id, or None
    score: object  # best scorer score over the shortlist (None for an empty gallery)
    best_identity: object  # identity of the best score, matched or not (None for an empty gallery)


NO_MATCH = MatchResult(None, None, None)


def shortlist_identities(similarities, identities, count):
    """Indices of the best sample of each of the `count` most similar identities, best first."""
    order = np.argsort(-similarities, kind="stable")
    # np.unique keeps the first (most similar) position of every identity in that order.
    _, first = np.unique(identities[order], return_index=True)
    return order[np.sort(first)[:count]]


class Matcher:
    """Embedding shortlist, then batched scorer rescoring.

    Args:
        models: `ReIDModels` (its scorer and match threshold).
        gallery: `Gallery`.
        shortlist: identities rescored per query.
        threshold: match threshold; None takes the export's.
    """

    def __init__(self, models, gallery, shortlist=5, threshold=None):
        if shortlist < 1:
            raise ValueError(f"shortlist must be >= 1, got {shortlist}")
        self.models = models
        self.gallery = gallery
        self.shortlist = int(shortlist)
        self.threshold = models.match_threshold if threshold is None else float(threshold)
        if not math.isfinite(self.threshold):
            raise ValueError(f"threshold must be a finite number, got {threshold}")

    def match(self, query, exclude=()):
        """Best gallery identity for one crop's features (a dict of arrays with one row).

        Identities in `exclude` (held by other people in view) are never returned.
        """
        identities = self.gallery.sample_identities
        if exclude:
            allowed = ~np.isin(identities, list(exclude))
        else:
            allowed = np.ones(len(identities), bool)
        if not allowed.any():
            return NO_MATCH
        candidates = np.flatnonzero(allowed)
        similarities = self.gallery.embeddings[candidates] @ query["embedding"][0]
        shortlisted = shortlist_identities(similarities, identities[candidates], self.shortlist)
        picked = candidates[shortlisted]
        if self.models.scorer is None:
            scores = similarities[shortlisted]
        else:
            gallery_features = self.gallery.features(self.gallery.sample_ids[picked].tolist())
            scores = self.models.score({name: query[name] for name in self.models.feature_names}, gallery_features)
        best = int(np.argmax(scores))
        best_identity = int(identities[picked[best]])
        score = float(scores[best])
        return MatchResult(best_identity if score >= self.threshold else None, score, best_identity)
