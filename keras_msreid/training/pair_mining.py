"""In-batch mining of pairs for the similarity score, with static shapes."""

from keras import ops


def mine_pairs(labels, features, num_positives=2, num_negatives=2):
    """For every anchor, its hardest positives and negatives by embedding distance.

    Distances come from the embedding features (no gradient flows through the
    choice). Shapes are static (`top_k`), so the step compiles with XLA; where an
    anchor has fewer positives than asked, the extra slots are marked invalid.

    Returns:
        `(positive_index, positive_valid, negative_index, negative_valid)`, each of
        shape `(batch, num_positives)` or `(batch, num_negatives)`.
    """
    labels = ops.reshape(labels, (-1,))
    features = ops.stop_gradient(ops.cast(features, "float32"))
    squared = ops.sum(ops.square(features), axis=-1)
    distances = squared[:, None] - 2.0 * ops.matmul(features, ops.transpose(features)) + squared[None, :]
    same = ops.equal(labels[:, None], labels[None, :])
    positive = ops.logical_and(same, ops.logical_not(ops.eye(ops.shape(labels)[0], dtype="bool")))
    never = -1e9
    positive_distance, positive_index = ops.top_k(ops.where(positive, distances, never), num_positives)
    negative_distance, negative_index = ops.top_k(ops.where(same, never, -distances), num_negatives)
    return positive_index, positive_distance > never / 2, negative_index, negative_distance > never / 2
