"""Multi-level fusion of similarity maps into one pair logit."""

import keras
from keras import layers, ops

from keras_msreid.layers.batch_norm import batch_norm
from keras_msreid.layers.depthwise_correlation import DepthwiseCorrelation, correlate_shift_add


@keras.saving.register_keras_serializable(package="keras_msreid")
class SimilarityFusion(layers.Layer):
    """Joins similarity maps from low to high level and gives one logit per pair.

    The running map is concatenated with the next level's map (first reduced by a
    1x1 convolution with the stride that brings it to that level's resolution, when
    the two differ) and mixed by a 1x1 convolution; after the last level, a 3x3
    depth-wise separable convolution (spatial context at the coarsest resolution, at
    a ninth of a full 3x3 convolution's cost), global average pooling, a hidden
    dense layer and a dense layer give the logit. Everything here runs once per
    pair, so it stays point-wise or depth-wise.

    Args:
        strides: the stride of each input level relative to the image, low to high
            (e.g. `(8, 8, 16)`); each must divide the next (equal strides are
            joined without downsampling).
        channels: width of the reduced and mixed maps.
        hidden_units: width of the dense layer before the logit.

    Example:

    >>> fusion = SimilarityFusion(strides=(4, 16))
    >>> maps = [keras.random.normal((3, 40, 16, 32)), keras.random.normal((3, 10, 4, 32))]
    >>> tuple(fusion(maps).shape)
    (3, 1)
    """

    def __init__(self, strides, channels=32, hidden_units=64, **kwargs):
        super().__init__(**kwargs)
        self.strides = tuple(int(s) for s in strides)
        self.channels = int(channels)
        self.hidden_units = int(hidden_units)
        if not self.strides:
            raise ValueError("SimilarityFusion needs at least one level")
        for low, high in zip(self.strides, self.strides[1:]):
            if high < low or high % low:
                raise ValueError(f"each stride must divide the next, got {self.strides}")
        # Only where two levels' resolutions differ; equal ones are joined as they are.
        self.downsample = {}
        self.downsample_norm = {}
        for index, (low, high) in enumerate(zip(self.strides, self.strides[1:])):
            if high != low:
                self.downsample[str(index)] = layers.Conv2D(
                    self.channels, 1, strides=high // low, use_bias=False, name=f"downsample_{index}"
                )
                self.downsample_norm[str(index)] = batch_norm(name=f"downsample_norm_{index}")
        self.mix = [
            layers.Conv2D(self.channels, 1, use_bias=False, name=f"mix_{index}") for index in range(len(self.strides))
        ]
        self.mix_norm = [batch_norm(name=f"mix_norm_{index}") for index in range(len(self.strides))]
        self.context = layers.SeparableConv2D(self.channels, 3, padding="same", use_bias=False, name="context")
        self.context_norm = batch_norm(name="context_norm")
        self.hidden = layers.Dense(self.hidden_units, activation="relu", name="hidden")
        self.logit = layers.Dense(1, name="logit")

    def build(self, input_shape):
        running = None
        for index, shape in enumerate(input_shape):
            if running is not None:
                if str(index - 1) in self.downsample:
                    self.downsample[str(index - 1)].build(running)
                    running = self.downsample[str(index - 1)].compute_output_shape(running)
                    self.downsample_norm[str(index - 1)].build(running)
                shape = tuple(shape[:3]) + (shape[3] + self.channels,)
            self.mix[index].build(shape)
            running = tuple(shape[:3]) + (self.channels,)
            self.mix_norm[index].build(running)
        self.context.build(running)
        self.context_norm.build(running)
        self.hidden.build((None, self.channels))
        self.logit.build((None, self.hidden_units))

    def call(self, maps, training=None, depthwise="grouped"):
        """`depthwise`: how the context's 3x3 depth-wise step runs, as `DepthwiseCorrelation`'s
        `method`: TensorFlow's depth-wise convolution, or (`"shift_add"`) nine shifted
        products, the same numbers. XLA's CPU depth-wise convolution runs this small
        map about 12x slower than the slices do (docs/RESULTS.md, "Two-stage ranking at
        Market scale"), so the scorer, which XLA compiles, takes the slices.
        """
        if len(maps) != len(self.strides):
            raise ValueError(f"expected {len(self.strides)} similarity maps, got {len(maps)}")
        if depthwise not in DepthwiseCorrelation.ALIGNED_METHODS:
            raise ValueError(f"depthwise must be one of {DepthwiseCorrelation.ALIGNED_METHODS}, got {depthwise!r}")
        running = None
        for index, level_map in enumerate(maps):
            if running is not None:
                if str(index - 1) in self.downsample:
                    running = self.downsample[str(index - 1)](running)
                    running = ops.relu(self.downsample_norm[str(index - 1)](running, training=training))
                level_map = ops.concatenate([running, level_map], axis=-1)
            running = ops.relu(self.mix_norm[index](self.mix[index](level_map), training=training))
        if depthwise == "shift_add":
            # One kernel for every pair: a (1, 3, 3, C) patch broadcast over the batch.
            kernel = ops.transpose(self.context.depthwise_kernel, (3, 0, 1, 2))
            running = ops.matmul(correlate_shift_add(kernel, running), self.context.pointwise_kernel[0, 0])
        else:
            running = self.context(running)
        running = ops.relu(self.context_norm(running, training=training))
        return self.logit(self.hidden(ops.mean(running, axis=(1, 2))))

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], 1)

    def get_config(self):
        config = super().get_config()
        config.update(strides=self.strides, channels=self.channels, hidden_units=self.hidden_units)
        return config
