"""`msreid train`: train (or resume) a model on a ReID dataset."""

import dataclasses
import logging

from keras_msreid.cli.arguments import (DATASET_HELP, MODEL_FLAGS, PROTOCOL_HELP, add_dataset_options, add_model_options,
                                        dataset_options, model_options)
from keras_msreid.training.config import DEFAULT_EPOCHS, DEFAULT_MIN_STEPS

HELP = "Train an MSReID model with model.fit; run again to resume after a kill."


def add_arguments(parser):
    _add(parser, "--config", help="YAML file of TrainConfig fields; flags override it")
    _add(parser, "--dataset", help=DATASET_HELP)
    _add(parser, "--root", help="dataset root folder")
    _add(parser, "--out", dest="out_dir", help="run directory (checkpoints, logs, model.keras)")
    _add(parser, "--epochs", type=int,
         help=f"epochs to train (default: {DEFAULT_EPOCHS}, or as many as make {DEFAULT_MIN_STEPS:,} steps "
              "if more: a small training set needs more epochs)")
    _add(parser, "--steps-per-epoch", type=int, dest="steps_per_epoch")
    _add(parser, "--learning-rate", type=float, dest="learning_rate")
    _add(parser, "--p", type=int, help="identities per batch")
    _add(parser, "--k", type=int, help="images per identity in a batch")
    add_model_options(parser, "model options (set model: in --config for the others)")
    _add(parser, "--image-size", type=int, nargs=2, dest="image_size", metavar=("H", "W"))
    _add(parser, "--eval-every", type=int, dest="eval_every", help="evaluate every N epochs")
    # Checked by TrainConfig, so that the flag and a --config file get one message.
    _add(parser, "--protocol", help=PROTOCOL_HELP.format(""))
    _add(parser, "--seed", type=int)
    _add(parser, "--initial-weights", dest="initial_weights", metavar="MODEL",
         help="start from this .keras model's weights (fine-tuning) instead of a random initialisation")
    _add(parser, "--quantization-aware", dest="quantization_aware", action="store_const", const=True,
         help="train under the int8 export's rounding, so that its int8 export agrees better with "
              "float (fine-tune with --initial-weights)")
    _add(parser, "--strategy", choices=("default", "mirrored", "multi_worker"))
    _add(parser, "--mixed-precision", dest="mixed_precision", action="store_const", const=True,
         help="compute in float16 with float32 weights (for GPUs)")
    _add(parser, "--xla", dest="jit_compile", action="store_const", const=True,
         help="compile the train step with XLA (for GPUs: on a 2-core CPU it was 8x slower)")
    add_dataset_options(parser)
    _add(parser, "--no-check-files", dest="check_files", action="store_const", const=False,
         help="skip decoding every image once before training")


def config_from_args(args):
    """The `TrainConfig` of `--config` with the flags given on top; a bad value names its flag or file."""
    from keras_msreid.errors import UserError
    from keras_msreid.training.config import ConfigError, TrainConfig

    fields = {field.name for field in dataclasses.fields(TrainConfig)}
    given = {key: value for key, value in vars(args).items() if value is not None}
    overrides = {key: value for key, value in given.items() if key in fields}
    model_overrides = model_options(args)
    try:
        config = TrainConfig.load(args.config, **overrides) if args.config else TrainConfig(**overrides)
        if model_overrides:  # a model flag replaces that option only, not the config's others
            config = dataclasses.replace(config, model={**config.model, **model_overrides})
    except ConfigError as error:
        if error.key in overrides and error.key in _FLAGS:
            raise UserError(f"{_FLAGS[error.key]} {error.problem}") from None
        if error.key == "model" and error.option in model_overrides:
            raise UserError(f"{MODEL_FLAGS[error.option]}: {error.problem}") from None
        raise
    # A reader option given as a flag replaces that option only, not the config's others.
    options = dataset_options(args)
    if options:
        config = dataclasses.replace(config, dataset_options={**config.dataset_options, **options})
    return config


# TrainConfig field -> the flag that sets it, for error messages.
_FLAGS = {}


def _add(parser, *names, **kwargs):
    action = parser.add_argument(*names, **kwargs)
    _FLAGS[action.dest] = names[0]
    return action


def run(args):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from keras_msreid.errors import UserError
    from keras_msreid.training.trainer import train

    config = config_from_args(args)
    if not config.root:
        raise UserError("--root (or root: in --config) is required")
    _, metrics = train(config)
    for ranking, result in metrics.items():
        print(f"{ranking:>10}: rank-1 {result['rank1']:.3f}  rank-5 {result['rank5']:.3f}  mAP {result['mAP']:.3f}")
    print(f"model: {config.out_dir}/model.keras")
    return 0
