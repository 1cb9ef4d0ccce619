"""Size and latency of an export under LiteRT, against Keras and the MobileNet peers, in one run.

Per mode of the export: file sizes; the extractor's latency per image (batch 1);
the scorer's latency per pair for one query against 1, 10 and 100 gallery images in
one invoke; the whole cost of
one query against a shortlist of 10 and of 100 gallery images (extract the query,
encode it, score it against the stored gallery features in one invoke, and for
100 also in invokes of `PAIRS_PER_INVOKE`, the runtime's default). Each at
LiteRT 1, 2 and 4 threads, medians over `--runs`. The Keras float model (TensorFlow's
own thread pool) and the peers of `ApplicationBackbone`, `keras.applications`
MobileNetV2 at alpha 1.0 and 0.35 and MobileNetV3Small (weights=None,
global-average-pooled features, same input size, converted to float32 and full int8
the same way as the extractor), are timed in the same run.

Usage:

```bash
msreid export model.keras --out exported --calibration-root DATA --calibration-dataset market1501
python benchmarks/bench_tflite_latency.py exported --runs 50 --threads 1 2 4
```
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from keras_msreid.edge_demo.litert import TFLiteModel  # noqa: E402
from keras_msreid.edge_demo.reid_models import PAIRS_PER_INVOKE, ReIDModels, read_metadata  # noqa: E402
from timing import crops_to_time, median_seconds  # noqa: E402


def median_ms(function, runs, warmup=3):
    return 1000.0 * median_seconds(function, runs, warmup)


def time_export(reid, images, gallery_size, runs):
    """Extractor ms/image, scorer ms/pair at 1, 10, 100, query cost vs 10 and 100."""
    image = images[:1]
    row = {"extract": median_ms(lambda: reid.extract(image), runs)}
    if reid.scorer is None:  # an embedding-only model: nothing to score
        return row
    features = reid.extract(images[:gallery_size])
    query = reid.encode(reid.extract(image), side="a")
    gallery = reid.encode(features, side="b")
    for pairs in (1, 10, 100):
        gallery_part = {name: value[:pairs] for name, value in gallery.items()}
        row[f"pair@{pairs}"] = median_ms(
            lambda: reid.score(query, gallery_part, pairs_per_invoke=None), max(5, runs // (1 + pairs // 10))
        ) / pairs
    for shortlist in (10, 100):
        gallery_part = {name: value[:shortlist] for name, value in gallery.items()}

        def one_query():
            reid.score(reid.encode(reid.extract(image), side="a"), gallery_part, pairs_per_invoke=None)

        row[f"query+{shortlist}"] = median_ms(one_query, max(5, runs // (1 + shortlist // 10)))
    gallery_part = {name: value[:100] for name, value in gallery.items()}
    row["query+100/default"] = median_ms(
        lambda: reid.score(reid.encode(reid.extract(image), side="a"), gallery_part),
        max(5, runs // 11),
    )
    return row


def time_keras(model, images, runs):
    import tensorflow as tf

    extractor = model.extractor()
    extract = tf.function(lambda x: extractor(x, training=False), reduce_retracing=True)
    image = tf.constant(images[:1], tf.float32)
    row = {"extract": median_ms(lambda: extract(image), runs)}
    if not model.levels:  # an embedding-only model: nothing to score
        return row
    scorer = model.scorer("grouped")
    score = tf.function(lambda inputs: scorer(inputs, training=False), reduce_retracing=True)
    features = extractor.predict(images[:100].astype(np.float32), verbose=0)
    names = model.scorer_feature_names

    def pair_inputs(count):
        inputs = {f"a_{n}": tf.constant(np.repeat(features[n][:1], count, 0)) for n in names}
        inputs.update({f"b_{n}": tf.constant(features[n][:count]) for n in names})
        return inputs

    for pairs in (1, 10, 100):
        inputs = pair_inputs(pairs)
        row[f"pair@{pairs}"] = median_ms(lambda: score(inputs), max(5, runs // (1 + pairs // 10))) / pairs
    for shortlist in (10, 100):
        gallery = {f"b_{n}": tf.constant(features[n][:shortlist]) for n in names}

        def one_query():
            query = extract(image)
            inputs = {f"a_{n}": tf.repeat(query[n], shortlist, axis=0) for n in names}
            score({**inputs, **gallery})

        row[f"query+{shortlist}"] = median_ms(one_query, max(5, runs // (1 + shortlist // 10)))
    return row


PEERS = (("MobileNetV2", 1.0), ("MobileNetV2", 0.35), ("MobileNetV3Small", 1.0))


def peer_models(image_size, calibration):
    """`{name: {mode: bytes}}` for the peers' feature extractors (`ApplicationBackbone`'s networks)."""
    import keras

    from keras_msreid.export.convert import convert_keras_model
    from keras_msreid.models.application_backbone import APPLICATIONS

    converted = {}
    for application, alpha in PEERS:
        build, (low, high) = APPLICATIONS[application]
        backbone = build(input_shape=tuple(image_size) + (3,), alpha=alpha, include_top=False, weights=None,
                         pooling="avg", **({"include_preprocessing": False} if low == 0.0 else {}))
        images = keras.Input(tuple(image_size) + (3,), name="images")
        # Same input contract as the extractor: RGB pixels in [0, 255], mapped to the network's own range.
        features = backbone(keras.layers.Rescaling((high - low) / 255.0, offset=low)(images))
        model = keras.Model(images, {"features": features}, name=f"{application.lower()}_{alpha}")
        samples = [{"images": image[None]} for image in calibration]
        converted[f"{application} x{alpha}"] = convert_keras_model(
            model, ["float32", "int8"], samples, "uint8", what=model.name
        )
    return converted


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("export_dir", help="folder written by msreid export")
    parser.add_argument("--model", help="Keras model (default: the export's source model)")
    parser.add_argument("--runs", type=int, default=50, help="timed runs per figure (fewer for big batches)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4], help="LiteRT interpreter threads")
    parser.add_argument("--modes", nargs="+", help="export modes to time (default: all)")
    parser.add_argument("--dataset", default="folder", help="layout of --root (as in msreid train)")
    parser.add_argument("--root", help="dataset whose training crops to time on (default: random pixels)")
    parser.add_argument("--no-peers", action="store_true", help="skip the MobileNet rows")
    args = parser.parse_args()

    metadata = read_metadata(args.export_dir)
    image_size = tuple(metadata["image_size"])
    images = crops_to_time(image_size, 100, args.dataset, args.root)
    modes = args.modes or list(metadata["models"])

    columns = ["extract", "pair@1", "pair@10", "pair@100", "query+10", "query+100", "query+100/default"]
    header = (
        f"{'model':<30} {'threads':>7} {'MB ext':>7} {'MB sc':>6} {'ms/img':>7} {'ms/pair@1':>9} "
        f"{'@10':>6} {'@100':>6} {'query+10':>8} {'query+100':>9} {f'q+100/{PAIRS_PER_INVOKE}':>8}"
    )
    rows = []

    def add(name, threads, sizes, row):
        cells = [f"{row[c]:.3f}" if c in row else "-" for c in columns]
        rows.append(
            f"{name:<30} {threads:>7} {sizes[0]:>7} {sizes[1]:>6} {cells[0]:>7} {cells[1]:>9} "
            f"{cells[2]:>6} {cells[3]:>6} {cells[4]:>8} {cells[5]:>9} {cells[6]:>8}"
        )

    for mode in modes:
        entries = metadata["models"][mode]
        sizes = [f"{entries[role]['bytes'] / 1e6:.2f}" if role in entries else "-" for role in ("extractor", "scorer")]
        for threads in args.threads:
            reid = ReIDModels.load(args.export_dir, mode, num_threads=threads)
            add(f"MSReID {mode}", threads, sizes, time_export(reid, images, 100, args.runs))

    import keras

    import keras_msreid.models  # noqa: F401

    model = keras.saving.load_model(args.model or metadata["source_model"]["path"], safe_mode=True)
    add("MSReID Keras float32", "TF", ["-", "-"], time_keras(model, images, args.runs))

    if not args.no_peers:
        for name, per_mode in peer_models(image_size, images[:50].astype(np.float32)).items():
            for mode, model_bytes in per_mode.items():
                for threads in args.threads:
                    runtime = TFLiteModel(model_bytes, num_threads=threads)
                    row = {"extract": median_ms(lambda: runtime(images=images[:1]), args.runs)}
                    add(f"{name} {mode}", threads, [f"{len(model_bytes) / 1e6:.2f}", "-"], row)

    print(f"image {image_size[0]}x{image_size[1]}, medians of up to {args.runs} runs, ms; "
          "query+K = extract one query + score it against K stored gallery features in one invoke; "
          f"q+100/{PAIRS_PER_INVOKE} = the same for 100 in invokes of {PAIRS_PER_INVOKE} (ReIDModels' default)")
    print(header)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
