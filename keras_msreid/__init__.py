"""keras_msreid: multi-level similarity person re-identification for Keras 3.

The package is split by concept: `datasets` parse on-disk layouts into records,
`data` turns records into `tf.data` pipelines, `metrics` evaluates rankings in pure
numpy, `layers` and `models` hold the network, `retrieval` ranks galleries.
Sub-packages are imported on use so that `import keras_msreid` stays cheap.
"""

__version__ = "0.1.0"
