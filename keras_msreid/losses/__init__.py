"""Losses of the score (verification, improved ranking) and of the embedding, and the in-batch pair mining they train on."""

from keras_msreid.losses.identity import smoothed_identity_loss
from keras_msreid.losses.pair_mining import mine_pairs
from keras_msreid.losses.ranking import improved_ranking_loss
from keras_msreid.losses.triplet import batch_hard_triplet_loss
from keras_msreid.losses.verification import verification_loss

__all__ = [
    "batch_hard_triplet_loss",
    "improved_ranking_loss",
    "mine_pairs",
    "smoothed_identity_loss",
    "verification_loss",
]
