"""`msreid summary`: parameters and multiply-adds of a model, counted from its graph."""

HELP = "Print parameters and per-image / per-pair multiply-adds of a model."


def add_arguments(parser):
    parser.add_argument("model", nargs="?", help="a .keras file (default: a new model with the flags below)")
    parser.add_argument("--image-size", type=int, nargs=2, default=(160, 64), metavar=("H", "W"))
    parser.add_argument("--levels", nargs="*", default=["high"],
                        help="similarity levels (default: high, as msreid train; none: embedding only)")
    parser.add_argument("--num-classes", type=int, default=751, help="ID classifier size (training only)")


def run(args):
    from keras_msreid.models import MSReID, load_model
    from keras_msreid.models.budget import format_budget, model_budget

    if args.model:
        model = load_model(args.model)
    else:
        model = MSReID.from_options(image_size=tuple(args.image_size), levels=tuple(args.levels), num_classes=args.num_classes)
    print(format_budget(model_budget(model)))
    return 0
