"""Quantization-aware training: the extractor's int8 rounding simulated in float while it trains.

`simulated_int8(model)` makes the backbone's convolutions and activations round
as the int8 export (`export/convert.py`) will: every `Conv2D` / `DepthwiseConv2D`
kernel to 8 bits per output channel, symmetric (narrow range, as the converter
quantizes weights), and every tensor the int8 extractor stores between ops to 8
bits per tensor over its range. Gradients pass through the rounding unchanged
(the straight-through estimator of `keras.quantizers.fake_quant_with_min_max_vars`),
so the weights learn to sit where rounding costs least.

Which tensors round is read off the trunk's graph as the converter fuses it: a
batch norm folds into the convolution before it and a ReLU into the op before it,
so a convolution followed by a batch norm rounds only after that batch norm, and
a batch norm followed by a ReLU only after the ReLU. The per-channel rounding of
an unfolded kernel is the folded kernel's: a batch norm scales each output
channel, and a symmetric per-channel grid scales with it. The heads after global
pooling stay float in the export (`export/float_ops.py`), so they are left alone.

Activation ranges are each batch's own min and max (with 0, as TFLite's ranges
hold it), not moving averages: nothing is added to the model, so a checkpoint,
a resumed run and the saved `model.keras` are those of a plain model. The
converter calibrates over its sample set, whose range is a little wider than
one batch's; the simulation rounds on a slightly finer grid than the export.

Example:

>>> with simulated_int8(model):
...     model.fit(batches, epochs=10)   # fine-tunes under int8 rounding
>>> model.save("model.keras")           # a plain model again
"""

import contextlib
import functools

from keras import layers, ops, quantizers

_WEIGHTED = (layers.Conv2D, layers.DepthwiseConv2D)
_ROUNDED_OUTPUTS = (layers.BatchNormalization, layers.ReLU, layers.Add, layers.Rescaling)
# The ops the converter folds each of these into, when it follows one of them.
_FOLDED_INTO = {layers.BatchNormalization: _WEIGHTED, layers.ReLU: _WEIGHTED + (layers.BatchNormalization, layers.Add)}


def round_activation(x):
    """`x` rounded to 8 bits per tensor over its range (held to include 0)."""
    low = ops.stop_gradient(ops.minimum(ops.min(x), 0.0))
    high = ops.stop_gradient(ops.maximum(ops.max(x), 0.0))
    # An all-zero tensor (a dead ReLU) has an empty range: a tiny one keeps it exactly zero.
    high = ops.maximum(high, low + 1e-6)
    return quantizers.fake_quant_with_min_max_vars(x, low, high, num_bits=8)


def round_kernel(kernel, channel_axis):
    """`kernel` rounded to 8 bits per output channel (`channel_axis`), symmetric, narrow range."""
    axes = tuple(axis for axis in range(len(kernel.shape)) if axis != channel_axis % len(kernel.shape))
    scale = ops.stop_gradient(ops.maximum(ops.max(ops.abs(kernel), axis=axes), 1e-8))
    return quantizers.fake_quant_with_min_max_vars(kernel, -scale, scale, num_bits=8, narrow_range=True,
                                                   axis=channel_axis)


@contextlib.contextmanager
def simulated_int8(model):
    """Within the block, `model.backbone` computes with int8 rounding; the model is unchanged after it."""
    plan = rounding_plan(model)
    for layer, round_output in plan:
        layer.call = _rounding_call(layer, round_output)
    try:
        yield model
    finally:
        for layer, _ in plan:
            del layer.__dict__["call"]


def rounding_plan(model):
    """`(layer, rounds_its_output)` for every backbone layer the simulation changes.

    Convolutions round their kernels; a layer rounds its output when the int8
    extractor stores it, i.e. when the converter fuses it into no later op.
    """
    float_head = {id(layer) for layer in model.backbone.embedding_head._flatten_layers()}
    return [(layer, not _folded_into_next(layer)) for layer in model.backbone._flatten_layers(include_self=False)
            if isinstance(layer, _WEIGHTED + _ROUNDED_OUTPUTS) and id(layer) not in float_head]


def _folded_into_next(layer):
    """Whether the converter fuses the op that consumes `layer`'s output into it (so it is not stored).

    In a functional graph (the trunk, a `keras.applications` network) the consumer is
    read off it. A layer a subclassed layer calls has no graph: there each convolution
    feeds its own batch norm (`SimilarityFeatures`, `SpatialTransformer`).
    """
    consumers = {id(node.operation): node.operation for node in layer._outbound_nodes}
    if not consumers:
        return isinstance(layer, _WEIGHTED)
    if len(consumers) != 1:
        return False
    consumer = next(iter(consumers.values()))
    return any(isinstance(consumer, kind) and isinstance(layer, producers) for kind, producers in _FOLDED_INTO.items())


def _rounding_call(layer, round_output):
    original = type(layer).call.__get__(layer)
    if isinstance(layer, layers.DepthwiseConv2D):
        def compute(inputs, *args, **kwargs):
            # (h, w, channels, multiplier) as TFLite lays it out: (1, h, w, channels x multiplier).
            shape = ops.shape(layer.kernel)
            flat = ops.reshape(layer.kernel, (shape[0], shape[1], 1, -1))
            kernel = ops.reshape(round_kernel(flat, channel_axis=-1), shape)
            outputs = ops.depthwise_conv(inputs, kernel, strides=layer.strides, padding=layer.padding,
                                         dilation_rate=layer.dilation_rate, data_format=layer.data_format)
            return _finish_conv(layer, outputs)
    elif isinstance(layer, layers.Conv2D):
        def compute(inputs, *args, **kwargs):
            return _finish_conv(layer, layer.convolution_op(inputs, round_kernel(layer.kernel, channel_axis=-1)))
    else:
        compute = original

    @functools.wraps(original)
    def call(*args, **kwargs):
        outputs = compute(*args, **kwargs)
        return round_activation(outputs) if round_output else outputs

    return call


def _finish_conv(layer, outputs):
    # Channels last, as every model here is built.
    if layer.use_bias:
        outputs = ops.add(outputs, layer.bias)
    return layer.activation(outputs) if layer.activation is not None else outputs
