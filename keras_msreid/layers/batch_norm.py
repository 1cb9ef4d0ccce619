"""The batch normalisation every layer of the network uses."""

from keras import layers

# Keras's default momentum (0.99) leaves a third of the initial statistics in the
# moving averages after 100 steps, so briefly trained models infer garbage. 0.9 is
# PyTorch's default (momentum 0.1 there), which torchreid's models train with.
MOMENTUM = 0.9


def batch_norm(name):
    return layers.BatchNormalization(momentum=MOMENTUM, name=name)
