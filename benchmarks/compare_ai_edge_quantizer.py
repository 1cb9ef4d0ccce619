"""ai-edge-quantizer against the export's own int8: ranking, size, speed and per-tensor error.

The export's int8 mode comes from the TFLite converter's quantizer with two float
islands kept by hand (`export/float_ops.py`). ai-edge-quantizer (AEQ) is the
maintained tool for the same job: recipes applied to a float .tflite, a deny list
by regex over op output names (its selective quantization), and a per-tensor error
report. This script quantizes the export's float32 extractor and scorer with AEQ
recipes, calibrated on the same training images with the same seed as the export,
writes each result as the int8 mode of a copy of the export, and runs every variant
through the one validation path (`export.validate.validate_export`, the same query /
gallery split) and the latency measurement of `bench_tflite_latency.py`. Variants:

- `converter`: the export's own int8 (converter, hand-kept islands);
- `aeq_all`: AEQ `static_wi8_ai8` on every op;
- `aeq_islands`: the same with the islands of `export/float_ops.py` and the
  outputs left in float (AEQ `no_quantize` on exactly those ops, found by their
  output names, and on the outputs), the export's choices written as an AEQ recipe.

Then AEQ's per-tensor report (cosine similarity of every intermediate tensor
against the float model: the extractor on held-out images, the scorer on calibration
pairs) names the worst tensors of each.

AEQ is not a dependency of the package; install it to run this:
`pip install ai-edge-quantizer==0.10.0` (or `--target DIR` and `PYTHONPATH=DIR`).

```bash
msreid export RUN/model.keras --out EXPORT --modes float32 int8 --calibration-root DATA \\
    --calibration-dataset cuhk01 --num-test-ids 100 --split-seed 1
python benchmarks/compare_ai_edge_quantizer.py EXPORT --out /tmp/aeq --dataset cuhk01 --root DATA \\
    --num-test-ids 100 --split-seed 1 --threads 1
```
"""

import argparse
import json
import os
import pathlib
import re
import struct
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TQDM_DISABLE", "1")  # AEQ's progress bars

import numpy as np  # noqa: E402

from bench_tflite_latency import time_export  # noqa: E402
from keras_msreid.edge_demo.reid_models import ReIDModels, read_metadata  # noqa: E402
from keras_msreid.export.float_ops import float_islands  # noqa: E402


def aeq_quantize(float_bytes, samples, keep_float, threads):
    """AEQ static int8 of `float_bytes` calibrated on `samples`; `keep_float` tensor names stay float."""
    from ai_edge_quantizer import quantizer, recipe
    from ai_edge_quantizer.algorithm_manager import AlgorithmName
    from ai_edge_quantizer.qtyping import TFLOperationName

    engine = quantizer.Quantizer(bytearray(float_bytes), recipe.static_wi8_ai8())
    if keep_float:
        # An op's scope is its output names, each followed by ";".
        names = "|".join(re.escape(name) for name in keep_float)
        engine.update_quantization_recipe(
            regex=f"^(?:{names});$", operation_name=TFLOperationName.ALL_SUPPORTED, algorithm_key=AlgorithmName.NO_QUANTIZE
        )
        # Every output float, as in the export: AEQ treats all outputs as one virtual op, and
        # quantizing it would put the float heads back on 256 levels (the score's ties).
        engine.update_quantization_recipe(
            regex=".*", operation_name=TFLOperationName.OUTPUT, algorithm_key=AlgorithmName.NO_QUANTIZE
        )
    calibration = engine.calibrate({"serving_default": samples}, num_threads=threads)
    return _signature_to_outputs(bytes(engine.quantize(calibration, enable_progress_report=False).quantized_model))


def _signature_to_outputs(model_bytes):
    """Points each signature output at the subgraph output AEQ put after it.

    AEQ 0.10.0 inserts a QUANTIZE or DEQUANTIZE before a model output whose
    producer and consumers differ in precision, but re-points the signature only
    when that output feeds nothing else. The STN's theta is an output and feeds the
    float sampling weights, so its signature entry kept naming the tensor before
    the DEQUANTIZE, which LiteRT's signature runner cannot read ("Tensor data is
    null").
    """
    from ai_edge_litert import schema_py_generated as schema

    # Patched in place: a re-serialisation would drop the buffers AEQ appends after the flatbuffer.
    patched = bytearray(model_bytes)
    model = schema.Model.GetRootAs(model_bytes, 0)
    for number in range(model.SignatureDefsLength()):
        signature = model.SignatureDefs(number)
        subgraph = model.Subgraphs(signature.SubgraphIndex())
        outputs = subgraph.OutputsAsNumpy().tolist()
        by_name = {subgraph.Tensors(index).Name().decode(): index for index in outputs}
        for o in range(signature.OutputsLength()):
            item = signature.Outputs(o)
            if item.TensorIndex() in outputs:
                continue
            name = subgraph.Tensors(item.TensorIndex()).Name().decode()
            after = [by_name[name + suffix] for suffix in ("_dequant", "_quantized") if name + suffix in by_name]
            field = item._tab.Offset(6)  # TensorMap.tensor_index
            if len(after) != 1 or not field:
                raise RuntimeError(f"AEQ output {name!r}: no single subgraph output follows it")
            struct.pack_into("<I", patched, item._tab.Pos + field, after[0])
    return bytes(patched)


def per_tensor_report(float_bytes, quantized_bytes, samples, threads, worst=4):
    """AEQ's per-tensor comparison: (tensors compared, [(name, cosine similarity)] of the `worst`)."""
    from ai_edge_quantizer import quantizer
    from ai_edge_quantizer.utils.validation_utils import ValidationErrorMetric

    engine = quantizer.Quantizer(bytearray(float_bytes), previous_quantized_model=bytearray(quantized_bytes))
    result = engine.validate(
        {"serving_default": samples}, error_metrics=[ValidationErrorMetric.COSINE_SIMILARITY], num_threads=threads
    ).get_signature_comparison_result("serving_default")
    tensors = {**result.intermediate_tensors, **result.output_tensors}
    cosine = sorted((values["cosine_similarity"], name) for name, values in tensors.items())
    return len(cosine), [(name, value) for value, name in cosine[:worst]]


def write_variant(export_dir, out_dir, model, files_by_role):
    """A copy of the export's metadata whose only mode is int8, with `files_by_role` as its models."""
    from keras_msreid.export.convert import smoke_tested_entries, write_export

    metadata = read_metadata(export_dir)
    extractor = model.extractor()
    smoke_images = np.random.default_rng(0).uniform(0, 255, (2,) + tuple(model.image_size) + (3,)).astype(np.float32)
    converted = {role: {"int8": data} for role, data in files_by_role.items()}
    entries = smoke_tested_entries(model, extractor, converted, smoke_images, ["int8"])
    metadata["models"] = entries
    write_export(out_dir, metadata, {entries["int8"][role]["file"]: data for role, data in files_by_role.items()})


def model_bytes(export_dir, mode):
    metadata = read_metadata(export_dir)
    return {
        role: (pathlib.Path(export_dir) / entry["file"]).read_bytes() for role, entry in metadata["models"][mode].items()
    }


def main(argv=None):
    from keras_msreid.cli.arguments import add_dataset_options, add_dataset_source, dataset_options

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export_dir", help="an msreid export with float32 and int8 modes")
    parser.add_argument("--out", required=True, help="a new folder for the AEQ variants (one export each)")
    add_dataset_source(parser)
    add_dataset_options(parser)
    parser.add_argument("--calibration-count", type=int, default=200, help="as given to msreid export")
    parser.add_argument("--seed", type=int, default=0, help="as given to msreid export")
    parser.add_argument("--threads", type=int, default=1, help="LiteRT and AEQ threads")
    parser.add_argument("--runs", type=int, default=30, help="timed runs per latency figure")
    parser.add_argument("--json", help="write every figure to this JSON file")
    args = parser.parse_args(argv)
    try:
        import ai_edge_quantizer  # noqa: F401
    except ImportError:
        sys.exit("this benchmark needs ai-edge-quantizer: pip install ai-edge-quantizer==0.10.0")

    from keras_msreid.datasets import build_dataset
    from keras_msreid.export.convert import calibration_samples
    from keras_msreid.export.images import calibration_set
    from keras_msreid.export.validate import EvaluationSplit, validate_export
    from keras_msreid.models import load_model

    metadata = read_metadata(args.export_dir)
    missing = {"float32", "int8"} - set(metadata["models"])
    if missing:
        sys.exit(f"{args.export_dir}: needs the modes {sorted(missing)} (msreid export --modes float32 int8)")
    out = pathlib.Path(args.out)
    if out.exists() and any(out.iterdir()):
        sys.exit(f"--out {out} is not empty: give a new folder")
    model = load_model(metadata["source_model"]["path"])
    dataset = build_dataset(args.dataset, args.root, check_files=True, **dataset_options(args))
    image_size = tuple(model.image_size)
    images, ids = calibration_set(dataset.train, image_size, args.calibration_count, args.seed)
    representative, _ = calibration_samples(model, model.extractor(), images, ids, args.seed)
    split = EvaluationSplit.from_dataset(dataset, image_size)
    held_out = {"extractor": [{"images": image[None].astype(np.float32)} for image in split.images["query"][:16]]}
    if "scorer" in representative and representative["scorer"]:
        held_out["scorer"] = representative["scorer"][-16:]  # calibration pairs: AEQ's report needs float inputs

    float_models = model_bytes(args.export_dir, "float32")
    variants = {"converter": model_bytes(args.export_dir, "int8")}
    for name, islands in (("aeq_all", False), ("aeq_islands", True)):
        variants[name] = {
            role: aeq_quantize(
                float_models[role], representative[role], float_islands(role, float_models[role]) if islands else [],
                args.threads,
            )
            for role in float_models
        }
    folders = {"converter": pathlib.Path(args.export_dir)}
    for name in ("aeq_all", "aeq_islands"):
        folders[name] = out / name
        write_variant(args.export_dir, folders[name], model, variants[name])

    images_for_timing = split.images["gallery"][:100]
    figures = {}
    for name, folder in folders.items():
        report = validate_export(folder, split, model, ["int8"], args.threads)
        entry = report["modes"]["int8"]
        reid = ReIDModels.load(folder, "int8", num_threads=args.threads)
        timing = time_export(reid, images_for_timing, 100, args.runs)
        reports = {role: per_tensor_report(float_models[role], variants[name][role], samples, args.threads)
                   for role, samples in held_out.items()}
        figures[name] = {
            "keras": report["keras"],
            "int8": entry,
            "bytes": {role: len(data) for role, data in variants[name].items()},
            "latency_ms": {"extract": timing["extract"], "query+100": timing["query+100"]},
            "per_tensor": {role: {"compared": compared, "worst_cosine": worst}
                           for role, (compared, worst) in reports.items()},
        }
    keras = figures["converter"]["keras"]
    print(f"{len(split.images['query'])} queries x {len(split.images['gallery'])} gallery, "
          f"{args.threads} thread(s); Keras float: emb R1 {100 * keras['embedding_ranking']['rank1']:.1f} "
          f"mAP {100 * keras['embedding_ranking']['mAP']:.1f}"
          + (f", CSN R1 {100 * keras['score_ranking']['rank1']:.1f} mAP {100 * keras['score_ranking']['mAP']:.1f}"
             if "score_ranking" in keras else ""))
    print(f"{'variant':<12} {'emb R1':>6} {'emb mAP':>7} {'CSN R1':>6} {'CSN mAP':>7} {'score r':>8} "
          f"{'emb max|d|':>10} {'KB ext':>7} {'KB sc':>6} {'ms/img':>7} {'q+100':>7}")
    for name, row in figures.items():
        entry = row["int8"]
        score = entry.get("score_ranking")
        agreement = entry.get("score_agreement", {})
        print(f"{name:<12} {100 * entry['embedding_ranking']['rank1']:6.1f} {100 * entry['embedding_ranking']['mAP']:7.1f} "
              + (f"{100 * score['rank1']:6.1f} {100 * score['mAP']:7.1f} {agreement['correlation']:8.4f} " if score
                 else f"{'-':>6} {'-':>7} {'-':>8} ")
              + f"{entry['output_errors']['embedding']['max_abs']:10.4f} {row['bytes']['extractor'] / 1e3:7.0f} "
              + f"{row['bytes'].get('scorer', 0) / 1e3:6.0f} {row['latency_ms']['extract']:7.3f} "
              + f"{row['latency_ms']['query+100']:7.2f}")
    print("\nAEQ per-tensor report (cosine similarity to float: the extractor on 16 held-out images, the scorer "
          "on 16 calibration pairs), worst tensors:")
    for name, row in figures.items():
        for role, report in row["per_tensor"].items():
            worst = ", ".join(f"{tensor.split(';')[0]} {value:.3f}" for tensor, value in report["worst_cosine"])
            print(f"{name:<12} {role:<9} {report['compared']:4d} tensors compared; {worst}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(figures, indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()
