"""How close quantization-aware training's simulated int8 is to the LiteRT int8 extractor.

For query images of a split, the extractor's outputs three ways: the Keras float
model, the same model under `simulated_int8` (what `--quantization-aware` trains
with), and the export's int8 extractor run by LiteRT. Prints, per output, the mean
and max absolute difference of each pair and the correlation of the two errors
against float (simulated - float against int8 - float): a simulation that rounds
like the export makes errors of the same size, and the closer its grids are to the
converter's, the more the two errors correlate.

```bash
msreid export RUN/model.keras --out EXPORT --modes float32 int8 --calibration-root DATA \\
    --calibration-dataset cuhk01 --num-test-ids 100 --split-seed 1 --validation-ids 100
python benchmarks/compare_simulated_int8.py RUN/model.keras EXPORT --dataset cuhk01 --root DATA \\
    --num-test-ids 100 --split-seed 1 --validation-ids 100 --images 64
```
"""

import argparse
import sys

import numpy as np


def main(argv=None):
    from keras_msreid.cli.arguments import add_dataset_options, add_dataset_source, dataset_options

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="the .keras model the export was made from")
    parser.add_argument("export", help="the export folder (with an int8 mode)")
    add_dataset_source(parser)
    add_dataset_options(parser)
    parser.add_argument("--images", type=int, default=64, help="query images to compare on")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    from keras_msreid.datasets import build_dataset
    from keras_msreid.edge_demo.reid_models import ReIDModels
    from keras_msreid.export.images import load_images
    from keras_msreid.models.loading import load_model
    from keras_msreid.training.quantization_aware import simulated_int8

    model = load_model(args.model)
    dataset = build_dataset(args.dataset, args.root, check_files=False, **dataset_options(args))
    # uint8 pixels, what the export's extractor is given.
    images = np.round(load_images(dataset.query[: args.images], model.image_size)).astype(np.uint8)
    pixels = images.astype("float32")
    float_outputs = model.extractor().predict(pixels, verbose=0)
    with simulated_int8(model):
        simulated = model.extractor().predict(pixels, verbose=0)
    int8 = ReIDModels.load(args.export, mode="int8", num_threads=args.threads).extract(images)

    print(f"{len(images)} query images of {args.dataset}; mean / max |difference|")
    print(f"{'output':<14} {'float-int8':>18} {'simulated-int8':>18} {'float-simulated':>18} {'error corr':>10}")
    for name in ["embedding"] + sorted(set(int8) - {"embedding"}):
        exact, rounded, real = (np.asarray(outputs[name], "float64") for outputs in (float_outputs, simulated, int8))
        columns = [np.abs(a - b) for a, b in ((exact, real), (rounded, real), (exact, rounded))]
        errors = ((rounded - exact).ravel(), (real - exact).ravel())
        correlation = np.corrcoef(*errors)[0, 1] if all(e.std() > 0 for e in errors) else float("nan")
        cells = " ".join(f"{c.mean():>9.5f} / {c.max():<6.4f}" for c in columns)
        print(f"{name:<14} {cells} {correlation:>10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
