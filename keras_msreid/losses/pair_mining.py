"""In-batch mining of pairs for the similarity score, with static shapes."""

from keras import ops

_NEVER = -1e9


def mine_pairs(labels, features, hard_positives=1, hard_negatives=1, random_positives=0, random_negatives=0,
               noise=None):
    """For every anchor, its hardest positives and negatives by embedding distance, plus random ones.

    Hard pairs alone teach a score head the opposite of the embedding: the positives
    it sees are always far apart and the negatives always close, so "far means same"
    fits them, and that head ranks a whole gallery worse than chance. Random pairs,
    drawn among those not already picked as hard, show it the ordinary cases too.

    Distances come from the embedding features (no gradient flows through the
    choice). Shapes are static (`top_k`), so the step compiles with XLA; where an
    anchor has fewer candidates than asked, the extra slots are marked invalid.

    Args:
        labels: `(batch,)` identity labels.
        features: `(batch, dim)` embeddings.
        hard_positives, hard_negatives: hardest pairs per anchor.
        random_positives, random_negatives: random pairs per anchor.
        noise: `(batch, batch)` values in `[0, 1)` that order the random draws;
            required when any random pairs are asked for.

    Returns:
        `(positive_index, positive_valid, negative_index, negative_valid)`, of shape
        `(batch, hard_positives + random_positives)` and
        `(batch, hard_negatives + random_negatives)`; hard pairs come first.
    """
    if (random_positives or random_negatives) and noise is None:
        raise ValueError("mine_pairs: random_positives/random_negatives need a `noise` matrix")
    labels = ops.reshape(labels, (-1,))
    features = ops.stop_gradient(ops.cast(features, "float32"))
    squared = ops.sum(ops.square(features), axis=-1)
    distances = squared[:, None] - 2.0 * ops.matmul(features, ops.transpose(features)) + squared[None, :]
    same = ops.equal(labels[:, None], labels[None, :])
    positive = ops.logical_and(same, ops.logical_not(ops.eye(ops.shape(labels)[0], dtype="bool")))
    positive_index, positive_valid = _pick(positive, distances, hard_positives, random_positives, noise)
    negative_index, negative_valid = _pick(ops.logical_not(same), -distances, hard_negatives, random_negatives, noise)
    return positive_index, positive_valid, negative_index, negative_valid


def _pick(candidates, hardness, num_hard, num_random, noise):
    """Top `num_hard` candidates by `hardness`, then `num_random` others by `noise`."""
    hard_value, hard_index = ops.top_k(ops.where(candidates, hardness, _NEVER), num_hard)
    if not num_random:
        return hard_index, hard_value > _NEVER / 2
    taken = ops.sum(ops.one_hot(hard_index, ops.shape(candidates)[1]), axis=1) > 0
    remaining = ops.logical_and(candidates, ops.logical_not(taken))
    random_value, random_index = ops.top_k(ops.where(remaining, ops.cast(noise, "float32"), _NEVER), num_random)
    index = ops.concatenate([hard_index, random_index], axis=1)
    valid = ops.concatenate([hard_value > _NEVER / 2, random_value > _NEVER / 2], axis=1)
    return index, valid
