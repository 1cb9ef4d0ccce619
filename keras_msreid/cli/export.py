"""`msreid export MODEL.keras --out DIR`: TFLite extractor and scorer per mode, plus metadata.

Calibration (int8 ranges) uses `--calibration-count` images of the calibration
dataset's training split; the match threshold uses whole identities of its query
and gallery (held-out people). `msreid validate` then compares every mode with
the Keras model on a query / gallery split (see export/README.md).

Example:

```bash
msreid export model.keras --out exported --modes float32 float16 dynamic int8 --input-type uint8 \\
    --calibration-root /data/cuhk01 --calibration-dataset cuhk01 --calibration-count 200
msreid validate exported --dataset cuhk01 --root /data/cuhk01
```
"""

from keras_msreid.cli.arguments import add_dataset_options, at_least, dataset_options
from keras_msreid.edge_demo.reid_models import MODES
from keras_msreid.errors import UserError

HELP = "Export a trained model to TFLite (float32, float16, dynamic, int8) with metadata."


def add_arguments(parser):
    parser.add_argument("model", help="a .keras file written by msreid train")
    parser.add_argument("--out", required=True, help="folder for the .tflite files and metadata.json")
    parser.add_argument(
        "--modes", nargs="+", default=list(MODES), choices=MODES,
        help="float32, float16, dynamic and/or int8 (default: all)",
    )
    parser.add_argument("--input-type", default="uint8", choices=("uint8", "int8"), help="int8 image input dtype")
    parser.add_argument("--calibration-root", help="dataset folder for int8 calibration and the match threshold")
    parser.add_argument(
        "--calibration-dataset", default="folder",
        help="layout of --calibration-root: folder, market1501, cuhk01, ... (default: folder)",
    )
    parser.add_argument("--calibration-count", type=at_least(1), default=200, help="training images calibrating int8")
    parser.add_argument("--threshold-images", type=at_least(2), default=400, help="held-out images for the match threshold")
    parser.add_argument("--threshold-pairs", type=at_least(2), default=2000, help="pairs (half same-person) for the threshold")
    add_dataset_options(parser)
    parser.add_argument("--seed", type=int, default=0, help="seeds the image and pair sampling")


def run(args):
    import logging

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    from keras_msreid.export.convert import export_model
    from keras_msreid.export.images import calibration_set, identity_set

    calibration = {}
    if args.calibration_root:
        from keras_msreid.datasets import build_dataset

        dataset = build_dataset(args.calibration_dataset, args.calibration_root, check_files=True,
                                **dataset_options(args))
        image_size = _image_size(args.model)
        images, ids = calibration_set(dataset.train, image_size, args.calibration_count, args.seed)
        calibration.update(calibration_images=images, calibration_ids=ids)
        if dataset.query or dataset.gallery:
            images, ids = identity_set(dataset.query + dataset.gallery, image_size, args.threshold_images, args.seed)
            calibration.update(threshold_images=images, threshold_ids=ids)
    metadata = export_model(
        args.model,
        args.out,
        modes=args.modes,
        input_type=args.input_type,
        threshold_pairs=args.threshold_pairs,
        seed=args.seed,
        **calibration,
    )
    for mode, models in metadata["models"].items():
        for role, entry in models.items():
            print(f"{args.out}/{entry['file']}: {entry['bytes'] / 1e6:.2f} MB")
    print(f"match threshold {metadata['match_threshold']:.4f} ({metadata['match_threshold_calibration']['method']})")
    return 0


def _image_size(model_path):
    """The model's input size, read from the .keras file's config without building it."""
    import json
    import zipfile

    try:
        with zipfile.ZipFile(model_path) as archive:
            config = json.loads(archive.read("config.json"))
        return tuple(config["config"]["backbone"]["config"]["image_size"])
    except (OSError, KeyError, zipfile.BadZipFile) as error:
        raise UserError(f"{model_path} is not an MSReID .keras file ({error})") from None
