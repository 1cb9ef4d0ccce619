"""`msreid summary`: parameters and multiply-adds of a model, counted from its graph."""

from keras_msreid.cli.arguments import MODEL_FLAGS, add_model_options, model_options

HELP = "Print parameters and per-image / per-pair multiply-adds of a model."


def add_arguments(parser):
    parser.add_argument("model", nargs="?", help="a .keras file (default: a new model with the flags below)")
    parser.add_argument("--image-size", type=int, nargs=2, default=(160, 64), metavar=("H", "W"))
    parser.add_argument("--num-classes", type=int, default=751, help="ID classifier size (training only)")
    add_model_options(parser, "model options (as msreid train's; without MODEL)")


def run(args):
    from keras_msreid.errors import UserError
    from keras_msreid.models import MSReID, load_model
    from keras_msreid.models.budget import format_budget, model_budget
    from keras_msreid.models.options import ModelOptionError

    options = model_options(args)
    if args.model:
        if options:
            flags = ", ".join(MODEL_FLAGS[option] for option in options)
            raise UserError(f"{flags}: a saved model's options are its own; give MODEL or the flags, not both")
        model = load_model(args.model)
    else:
        try:
            model = MSReID.from_options(image_size=tuple(args.image_size), num_classes=args.num_classes, **options)
        except ModelOptionError as error:
            if error.option not in options:
                raise
            raise UserError(f"{MODEL_FLAGS[error.option]}: {error}") from None
    print(format_budget(model_budget(model)))
    return 0
