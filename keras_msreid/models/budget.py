"""Counts a model's parameters and its multiply-adds per image and per pair."""

import tensorflow as tf


def count_flops(keras_model):
    """Floating-point operations of one call at batch 1, as TensorFlow's profiler counts them.

    The model's graph is traced at batch size 1 and every op's registered FLOP
    statistics are summed (convolutions and matrix products count 2 per
    multiply-add, element-wise ops 1 per element).
    """
    specs = tf.nest.map_structure(
        lambda tensor: tf.TensorSpec((1,) + tuple(tensor.shape[1:]), tensor.dtype), keras_model.inputs
    )
    if isinstance(keras_model.input, dict):
        specs = {tensor.name.split(":")[0]: spec for tensor, spec in zip(keras_model.inputs, specs)}
        function = tf.function(lambda inputs: keras_model(inputs, training=False))
        concrete = function.get_concrete_function(specs)
    else:
        function = tf.function(lambda images: keras_model(images, training=False))
        concrete = function.get_concrete_function(specs[0])
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    # The profiler warns that one of its own TF1 helpers is deprecated: noise for a user.
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        profile = tf.compat.v1.profiler.profile(graph=concrete.graph, options=options)
    finally:
        logger.setLevel(level)
    return int(profile.total_float_ops)


def model_budget(model):
    """Parameters and per-image / per-pair multiply-adds of an `MSReID` at its image size.

    Multiply-adds are the profiler's FLOPs / 2, the convention of torchreid's model
    zoo ("GFLOPs" there are multiply-adds).
    """
    if not model.built:
        model.build()
    budget = {
        "parameters": int(model.count_params()),
        "parameters_inference": int(
            model.count_params() - (model.classifier.count_params() if model.classifier is not None else 0)
        ),
        "image_size": list(model.image_size),
        "multiply_adds_per_image": count_flops(model.extractor()) // 2,
    }
    if model.levels:
        budget["multiply_adds_per_pair"] = count_flops(model.scorer("shift_add")) // 2
    return budget


def format_budget(budget):
    rows = [
        ("parameters (training, with ID classifier)", f"{budget['parameters'] / 1e6:.3f} M"),
        ("parameters (inference)", f"{budget['parameters_inference'] / 1e6:.3f} M"),
        (f"multiply-adds per image at {budget['image_size'][0]}x{budget['image_size'][1]}",
         f"{budget['multiply_adds_per_image'] / 1e9:.4f} G"),
    ]
    if "multiply_adds_per_pair" in budget:
        rows.append(("multiply-adds per pair (scorer)", f"{budget['multiply_adds_per_pair'] / 1e6:.3f} M"))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value:>12}" for name, value in rows)
