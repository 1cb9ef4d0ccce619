"""`msreid validate EXPORT`: every exported mode against its Keras model on a dataset's query/gallery.

The one way to validate an export, right after `msreid export` or later, on the
calibration dataset or any other (export/README.md describes the report).

Example:

```bash
msreid validate exported/ --dataset cuhk01 --root /data/cuhk01 --num-test-ids 100 --threads 2 --json report.json
```
"""

from keras_msreid.cli.arguments import add_dataset_options, add_dataset_source, add_protocol_option, at_least, dataset_options
from keras_msreid.edge_demo.reid_models import MODES

HELP = "Validate a TFLite export against its Keras model (errors per output, score agreement, rank-1, mAP)."


def add_arguments(parser):
    parser.add_argument("export", help="a folder written by msreid export (metadata.json and .tflite files)")
    add_dataset_source(parser)
    add_protocol_option(parser)
    add_dataset_options(parser)
    parser.add_argument("--modes", nargs="+", choices=MODES, help="exported modes to check (default: all exported)")
    parser.add_argument("--reference", help="the .keras model to compare with (default: the export's source model)")
    parser.add_argument("--threads", type=at_least(1), help="LiteRT interpreter threads")
    parser.add_argument("--json", help="also write the report to this JSON file")


def run(args):
    import json

    from keras_msreid.datasets import build_dataset
    from keras_msreid.edge_demo.reid_models import read_metadata
    from keras_msreid.errors import UserError
    from keras_msreid.export.validate import EvaluationSplit, format_report, validate_export
    from keras_msreid.models import load_model
    from keras_msreid.utils.atomic import atomic_write_text

    try:
        metadata = read_metadata(args.export)
    except ValueError as error:  # the runtime names what is wrong with the folder
        raise UserError(str(error)) from None
    missing = sorted(set(args.modes or ()) - set(metadata["models"]))
    if missing:
        raise UserError(f"{args.export} has no {', '.join(missing)} export (it has {', '.join(metadata['models'])})")
    reference = load_model(args.reference) if args.reference else None
    dataset = build_dataset(args.dataset, args.root, check_files=True, **dataset_options(args))
    split = EvaluationSplit.from_dataset(dataset, tuple(metadata["image_size"]), protocol=args.protocol)
    report = validate_export(args.export, split, reference, args.modes, args.threads)
    print(format_report(report))
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
    return 0
