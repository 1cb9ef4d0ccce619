"""TFLite export of a tiny MSReID trained for a few steps on a tiny synthetic set.

One module-scoped export (all four modes, through `msreid export`, then
`msreid validate`) serves most tests; the failure tests patch the converter or the writer.
"""

import contextlib
import io
import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import TINY_MODEL
import keras_msreid.export.convert
from keras_msreid.utils.atomic import atomic_write_bytes
from keras_msreid.utils.file_hash import sha256_of_file
from keras_msreid.export.convert import MODES, convert_keras_model, export_model
from keras_msreid.export.op_check import UnsupportedOpsError, list_ops
from keras_msreid.edge_demo.litert import TFLiteModel, dequantize
from keras_msreid.edge_demo.reid_models import FORMAT_VERSION, ReIDModels, read_metadata, take
from keras_msreid.cli import main as msreid_main
from keras_msreid.data import make_train_dataset
from keras_msreid.datasets import build_dataset
from keras_msreid.models import MSReID
from keras_msreid.retrieval.extract import keras_score_fn
from keras_msreid.retrieval.ranking import rank_exhaustive
from keras_msreid.synthetic import write_market1501
from ai_edge_litert import schema_py_generated as schema

IMAGE_SIZE = (64, 32)
BUILTIN_OPS = {name for name in vars(schema.BuiltinOperator) if not name.startswith("_")} - {"CUSTOM"}
FEATURES = ["low_map", "low_patch", "mid_map", "mid_patch", "high_map", "high_patch"]


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "synth"
    write_market1501(root, num_ids=8, num_cameras=2, seed=0, image_size=IMAGE_SIZE)
    return root


@pytest.fixture(scope="module")
def model_path(dataset_root, tmp_path_factory):
    keras.utils.set_random_seed(0)
    dataset = build_dataset("market1501", dataset_root)
    model = MSReID.from_options(num_classes=dataset.num_train_pids, parts=2, **TINY_MODEL)
    # Eager steps: tracing the training graph would cost more than these steps. Batches
    # in a fixed order: on a starved machine a fast batch can overtake a slow one, which
    # (most likely) is how a starved suite's weights took the int8 scorer's order check
    # below from 0.987 to 0.833.
    # Fewer than about a dozen leave the pair scores flat (std ~1e-4 around 0.5),
    # and int8 noise of that size made their correlation with Keras a coin toss.
    model.compile(optimizer=keras.optimizers.Adam(3e-3), run_eagerly=True)
    model.fit(make_train_dataset(dataset.train, IMAGE_SIZE, p=4, k=2, seed=0, deterministic=True), steps_per_epoch=12,
              verbose=0)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def exported(model_path, dataset_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "out"
    report = out.parent / "report.json"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = msreid_main([
            "export", str(model_path), "--out", str(out), "--modes", *MODES,
            "--calibration-root", str(dataset_root), "--calibration-dataset", "market1501",
            "--calibration-count", "24", "--threshold-pairs", "200",
        ])
        assert code == 0, printed.getvalue()
        code = msreid_main(["validate", str(out), "--dataset", "market1501", "--root", str(dataset_root),
                            "--json", str(report)])
    assert code == 0, printed.getvalue()
    return {"dir": out, "report": json.loads(report.read_text()), "printed": printed.getvalue()}


def model_file(export_dir, role, mode):
    """The path of an export's `role` model in `mode`, as its metadata names it."""
    return export_dir / read_metadata(export_dir)["models"][mode][role]["file"]


@pytest.fixture(scope="module")
def keras_model(model_path):
    return keras.saving.load_model(model_path, safe_mode=True)


@pytest.fixture(scope="module")
def test_images(dataset_root):
    from keras_msreid.export.images import load_images

    dataset = build_dataset("market1501", dataset_root)
    return load_images(dataset.query[:6], IMAGE_SIZE)


def test_every_mode_uses_only_builtin_ops(exported):
    from ai_edge_litert.interpreter import Interpreter

    metadata = read_metadata(exported["dir"])
    assert sorted(metadata["models"]) == sorted(MODES)
    for mode, models in metadata["models"].items():
        for role in ("extractor", "scorer"):
            ops = list_ops((exported["dir"] / models[role]["file"]).read_bytes())
            assert set(ops) <= BUILTIN_OPS, (mode, role, set(ops) - BUILTIN_OPS)
            assert ops == models[role]["ops"]
            assert "MUL" in ops and "ADD" in ops
        # One query against many rows: at each level the query's patches run as depth-wise
        # convolutions over the rows' maps (one per part), the rows' patches as slices of
        # the query's map; the fusion's context (a weight kernel) as one more convolution.
        scorer_ops = [op["op_name"] for op in
                      Interpreter(model_path=str(model_file(exported["dir"], "scorer", mode)))._get_ops_details()]
        assert scorer_ops.count("DEPTHWISE_CONV_2D") == len(metadata["levels"]) * metadata["parts"] + 1, mode
        assert "STRIDED_SLICE" in scorer_ops, mode
    # The quantized extractor really computes in int8.
    assert "QUANTIZE" not in metadata["models"]["float32"]["extractor"]["ops"]
    assert "QUANTIZE" in metadata["models"]["int8"]["extractor"]["ops"]


def test_metadata_round_trips_and_names_every_tensor(exported, model_path, keras_model):
    metadata = read_metadata(exported["dir"])
    assert json.loads((exported["dir"] / "metadata.json").read_text()) == metadata
    assert metadata["format_version"] == FORMAT_VERSION
    assert metadata["image_size"] == list(IMAGE_SIZE)
    assert metadata["input"] == {"color": "RGB", "pixel_range": [0, 255], "layout": "NHWC"}
    assert (metadata["embedding_dim"], metadata["parts"], metadata["patch_size"]) == (16, 2, [3, 2])
    assert metadata["levels"] == ["low", "mid", "high"]
    assert metadata["scorer_feature_names"] == keras_model.scorer_feature_names == FEATURES
    assert metadata["source_model"] == {"path": str(model_path), "sha256": sha256_of_file(model_path)}
    assert 0.0 < metadata["match_threshold"] < 1.0
    assert metadata["match_threshold_calibration"]["method"] == "max_balanced_accuracy"
    for mode, models in metadata["models"].items():
        extractor, scorer = models["extractor"], models["scorer"]
        for entry in (extractor, scorer):
            assert entry["sha256"] == sha256_of_file(exported["dir"] / entry["file"])
        assert extractor["file"] == f"extractor_{mode}-{extractor['sha256'][:12]}.tflite"
        assert scorer["file"] == f"scorer_{mode}-{scorer['sha256'][:12]}.tflite"
        assert [t["name"] for t in extractor["inputs"]] == ["images"]
        assert extractor["inputs"][0]["shape"] == [-1, 64, 32, 3]
        assert {t["name"] for t in extractor["outputs"]} == {"embedding"} | {
            f"{level}_{kind}" for level in ("low", "mid", "high") for kind in ("map", "patch", "theta")
        }
        assert {t["name"] for t in scorer["inputs"]} == {f"{side}_{name}" for side in "ab" for name in FEATURES}
        assert [t["name"] for t in scorer["outputs"]] == ["score"]
        # One query (a batch of 1) against any number of rows.
        assert {t["name"]: t["shape"][0] for t in scorer["inputs"] + scorer["outputs"]} == {
            **{f"a_{name}": 1 for name in FEATURES}, **{f"b_{name}": -1 for name in FEATURES}, "score": -1}
        tensors = extractor["inputs"] + extractor["outputs"] + scorer["inputs"] + scorer["outputs"]
        if mode == "int8":
            assert extractor["inputs"][0]["dtype"] == "uint8"
            # The image input is pinned to [0, 255]: camera pixels quantize exactly.
            assert extractor["inputs"][0]["scale"] == pytest.approx(1.0, abs=1e-5)
            assert extractor["inputs"][0]["zero_point"] == 0
            assert {t["dtype"] for t in scorer["inputs"]} == {"int8"}
            assert all(t["scale"] > 0 for t in extractor["inputs"] + scorer["inputs"])
            # The heads after pooling run in float, so every output is float.
            outputs = extractor["outputs"] + scorer["outputs"]
            assert {(t["dtype"], t["scale"]) for t in outputs} == {("float32", None)}
        else:
            assert {t["dtype"] for t in tensors} == {"float32"}
            assert all(t["scale"] is None and t["zero_point"] is None for t in tensors)


def _keras_outputs(model, images):
    features = model.extractor().predict(images, verbose=0)
    inputs = {f"a_{n}": np.repeat(features[n][:1], len(images), 0) for n in FEATURES}
    inputs.update({f"b_{n}": features[n] for n in FEATURES})
    return features, model.scorer("shift_add").predict(inputs, verbose=0)["score"]


@pytest.mark.parametrize("mode,tolerance", [("float32", 1e-4), ("float16", 2e-2), ("dynamic", 2e-2)])
def test_float_modes_match_keras(exported, keras_model, test_images, mode, tolerance):
    features, scores = _keras_outputs(keras_model, test_images)
    reid = ReIDModels.load(exported["dir"], mode)
    lite = reid.extractor(images=test_images)  # every output, as LiteRT gives it
    for name in features:
        np.testing.assert_allclose(lite[name], features[name], atol=tolerance, err_msg=name)
    np.testing.assert_allclose(reid.score({n: v[:1] for n, v in lite.items()}, lite), scores, atol=tolerance)


def test_int8_outputs_are_close_to_float(exported, keras_model, test_images):
    """Tolerances from the int8 step of each output, about range / 255.

    Unit-vector components step by about 2 / 255 = 0.008: after a dozen
    requantized layers a mean error of one or two steps is expected (0.02 allows
    it), while a cell whose vector was short before normalisation can turn by
    more, so maps and patches are held to a mean, not a maximum. The embedding
    is compared by cosine. Theta's scale and centre (in [-1, 1]) step by
    0.008 at most, and come from the int8 features through the float STN head: two
    steps allowed (0.015). Scores come from int8 features through the float scorer;
    0.05 is about what one step on the pooled features moves the logit. (After
    twelve steps the scores differ little from pair to pair; how well int8 keeps
    their order is measured by `export.validate` on a trained model.)
    """
    pixels = np.round(test_images)
    features, scores = _keras_outputs(keras_model, pixels)
    reid = ReIDModels.load(exported["dir"], "int8")
    lite = reid.extractor(images=pixels.astype(np.uint8))
    cosine = np.sum(lite["embedding"] * features["embedding"], axis=-1) / np.linalg.norm(lite["embedding"], axis=-1)
    assert cosine.min() > 0.99
    for name in ("low_map", "mid_map", "high_map", "low_patch", "mid_patch", "high_patch"):
        assert np.abs(lite[name] - features[name]).mean() < 0.02, name
    for name in ("low_theta", "mid_theta", "high_theta"):
        np.testing.assert_allclose(lite[name], features[name], atol=0.015, err_msg=name)
    lite_scores = reid.score({n: v[:1] for n, v in lite.items()}, lite)
    np.testing.assert_allclose(lite_scores, scores, atol=0.05)


def test_int8_extractor_keeps_its_float_islands_in_float(exported):
    from ai_edge_litert.interpreter import Interpreter

    from keras_msreid.export.float_ops import float_islands, pooled_head_nodes, stn_interpolation_nodes

    graph = model_file(exported["dir"], "extractor", "float32").read_bytes()
    int8 = Interpreter(model_path=str(model_file(exported["dir"], "extractor", "int8")))
    dtypes = {t["name"]: t["dtype"] for t in int8.get_tensor_details()}
    for find, part in (
        (stn_interpolation_nodes, "spatial_transformer"),
        (lambda graph: pooled_head_nodes(graph, "embedding"), "embedding_head"),
    ):
        nodes = find(graph)
        assert nodes and any(part in name for name in nodes)
        assert not any("trunk" in name or "similarity_1/projection" in name for name in nodes)
        kept = [name for name in nodes if name in dtypes]
        assert kept and all(dtypes[name] == np.float32 for name in kept), part
    # ... and the rest is integer: every convolution outside the islands gives int8.
    islands = set(float_islands("extractor", graph))
    details = {t["index"]: t for t in int8.get_tensor_details()}
    convolutions = [op for op in int8._get_ops_details() if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D")
                    and details[op["outputs"][0]]["name"] not in islands]
    assert convolutions and all(details[op["outputs"][0]]["dtype"] == np.int8 for op in convolutions)
    with pytest.raises(ValueError, match="the model has no output named 'scores'"):
        pooled_head_nodes(model_file(exported["dir"], "scorer", "float32").read_bytes(), "scores")


def test_int8_scorer_takes_int8_features_and_computes_in_float(exported):
    from ai_edge_litert.interpreter import Interpreter

    int8 = Interpreter(model_path=str(model_file(exported["dir"], "scorer", "int8")))
    details = {t["index"]: t for t in int8.get_tensor_details()}
    assert {d["dtype"] for d in int8.get_input_details()} == {np.int8}
    ops = int8._get_ops_details()
    # Each input is dequantized once, by the op that reads it; everything after is float.
    inputs = {d["index"] for d in int8.get_input_details()}
    assert all(op["op_name"] == "DEQUANTIZE" for op in ops if set(op["inputs"]) & inputs)
    assert sum(op["op_name"] == "DEQUANTIZE" for op in ops) == len(inputs)
    assert all(details[out]["dtype"] == np.float32 for op in ops for out in op["outputs"])
    assert {"DEPTHWISE_CONV_2D", "CONV_2D"} <= {op["op_name"] for op in ops}


def test_float_islands_are_each_roles_parts(exported):
    from keras_msreid.export.float_ops import computed_nodes, float_islands, pooled_head_nodes, stn_interpolation_nodes

    extractor = model_file(exported["dir"], "extractor", "float32").read_bytes()
    scorer = model_file(exported["dir"], "scorer", "float32").read_bytes()
    assert float_islands("extractor", extractor) == stn_interpolation_nodes(extractor) + pooled_head_nodes(
        extractor, "embedding"
    )
    assert float_islands("scorer", scorer) == computed_nodes(scorer)
    # Every op's output, and nothing else: not the inputs, not the weights.
    names = set(computed_nodes(scorer))
    assert any("fusion" in name for name in names) and any("correlation_one_to_many" in name for name in names)
    assert not any(name.startswith("serving_default_") for name in names)
    with pytest.raises(ValueError, match="role must be 'extractor' or 'scorer', got 'gallery'"):
        float_islands("gallery", scorer)


def test_validation_report_compares_every_mode_with_keras(exported):
    report = exported["report"]
    assert sorted(report["modes"]) == sorted(MODES)
    float32 = report["modes"]["float32"]
    # (Rankings are not compared: after twelve steps many embeddings nearly tie,
    # and float rounding alone reorders them.)
    assert max(error["max_abs"] for error in float32["output_errors"].values()) < 1e-4
    assert float32["score_agreement"]["max_abs"] < 1e-4
    assert float32["score_agreement"]["correlation"] > 0.9999
    assert report["modes"]["int8"]["score_agreement"]["correlation"] > 0.9
    assert set(float32["output_errors"]) >= {"embedding", "low_map", "high_patch"}
    assert report["num_query"] > 0 and report["num_gallery"] > 0
    for entry in [report["keras"]] + list(report["modes"].values()):
        for ranking in ("embedding_ranking", "score_ranking"):
            assert 0.0 <= entry[ranking]["rank1"] <= entry[ranking]["rank5"] <= 1.0
            assert entry[ranking]["num_queries"] == report["num_query"]
        assert 0.0 <= entry["balanced_accuracy"] <= 1.0
    for line in ("keras", "float16", "dynamic", "int8", "low_map"):
        assert line in exported["printed"]


def test_validate_checks_the_modes_asked_against_the_reference_given(exported, model_path, dataset_root, tmp_path,
                                                                      capsys):
    report = tmp_path / "int8.json"
    assert msreid_main(["validate", str(exported["dir"]), "--dataset", "market1501", "--root", str(dataset_root),
                        "--modes", "int8", "--reference", str(model_path), "--json", str(report)]) == 0
    int8 = json.loads(report.read_text())
    assert list(int8["modes"]) == ["int8"]
    # The same export, the same reference and the same split give the same figures as validating every mode.
    assert int8["modes"]["int8"] == exported["report"]["modes"]["int8"]
    assert int8["keras"] == exported["report"]["keras"]


@pytest.mark.parametrize("mode", MODES)
def test_scorer_gallery_resizes_in_every_mode(exported, mode):
    metadata = read_metadata(exported["dir"])
    path = exported["dir"] / metadata["models"][mode]["scorer"]["file"]
    scorer = TFLiteModel(str(path))
    rng = np.random.default_rng(0)
    features = {}
    for name, tensor in scorer.inputs.items():
        values = rng.normal(size=[1 if name.startswith("a_") else 7] + tensor["shape"][1:]).astype(np.float32)
        features[name] = values / np.linalg.norm(values, axis=-1, keepdims=True)

    def rows(first, end):
        return {n: v if n.startswith("a_") else v[first:end] for n, v in features.items()}

    one_by_one = np.concatenate([scorer(**rows(i, i + 1))["score"] for i in range(7)])
    for count in (7, 3):
        np.testing.assert_allclose(scorer(**rows(0, count))["score"], one_by_one[:count], atol=1e-6)
    # The query side takes one row only.
    with pytest.raises(ValueError, match=r"input a_\w+ of .* takes a batch of 1, got shape \(2, "):
        scorer(**{n: np.repeat(v[:1], 2, 0) if n.startswith("a_") else v for n, v in features.items()})
    # The interpreter's own resize_tensor_input, without the signature runner.
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    runner_inputs = interpreter.get_signature_runner().get_input_details()
    for name, details in runner_inputs.items():
        if name.startswith("b_"):
            interpreter.resize_tensor_input(details["index"], [5] + list(details["shape"][1:]))
    interpreter.allocate_tensors()
    for name, value in rows(0, 5).items():
        interpreter.set_tensor(runner_inputs[name]["index"], scorer.prepare_input(name, value))
    interpreter.invoke()
    output = interpreter.get_signature_runner().get_output_details()["score"]
    raw = interpreter.get_tensor(output["index"])
    assert raw.shape == (5,)
    score = scorer.outputs["score"]
    real = raw if score["scale"] is None else dequantize(raw, score["scale"], score["zero_point"])
    np.testing.assert_allclose(real, one_by_one[:5], atol=1e-6)


@pytest.mark.parametrize("mode,tolerance,correlation", [("float32", 1e-4, 0.9999), ("int8", 0.05, 0.95)])
def test_keras_and_litert_scorers_rank_through_the_same_code(exported, keras_model, test_images, mode, tolerance,
                                                             correlation):
    # The same features for both scorers, so that only the scorer differs (int8: its own
    # quantization of them). This model's scores span about 1e-3, so beside the int8
    # tolerance of test_int8_outputs_are_close_to_float the order is checked by the
    # scores' correlation: for int8 0.987 beside two trainings, 0.992 at one thread (the
    # fixture's batches come in a fixed order; thread counts still move its weights a
    # little). A scrambled order correlates near 0.
    features = {name: features for name, features in keras_model.extractor().predict(test_images, verbose=0).items()
                if name in FEATURES}
    query = {name: value[:2] for name, value in features.items()}
    keras_scores = rank_exhaustive(keras_score_fn(keras_model.scorer("shift_add")), query, features)
    lite_scores = rank_exhaustive(ReIDModels.load(exported["dir"], mode).score, query, features)
    assert keras_scores.shape == lite_scores.shape == (2, len(test_images))
    np.testing.assert_allclose(lite_scores, keras_scores, atol=tolerance)
    assert np.corrcoef(keras_scores.ravel(), lite_scores.ravel())[0, 1] > correlation


def test_score_pairs_one_query_with_every_gallery_image(exported, test_images):
    reid = ReIDModels.load(exported["dir"], "int8")
    features = reid.extract(test_images)
    gallery = reid.encode(features, side="b")
    assert gallery["low_map"].dtype == np.int8
    query = {n: v[2:3] for n, v in features.items()}
    aligned = reid.score({n: np.repeat(v, 6, 0) for n, v in query.items()}, features, pairs_per_invoke=None)
    np.testing.assert_allclose(reid.score(query, gallery, pairs_per_invoke=4), aligned, atol=1e-6)
    # The score is symmetric (both directions are averaged).
    np.testing.assert_allclose(reid.score(features, query), aligned, atol=1 / 128)


def test_aligned_pairs_score_as_runs_of_one_query(exported, test_images):
    reid = ReIDModels.load(exported["dir"], "float32")
    features = reid.extract(test_images)
    queries, rows = np.array([0, 0, 3, 3, 3, 0]), np.array([1, 2, 4, 5, 0, 3])
    runs = reid.score(take(features, queries), take(features, rows), pairs_per_invoke=2)
    one_by_one = [reid.score(take(features, [i]), take(features, [j]))[0] for i, j in zip(queries, rows)]
    np.testing.assert_allclose(runs, one_by_one, atol=1e-6)


def test_score_takes_no_pairs_and_refuses_a_bad_invoke_size(exported, test_images):
    reid = ReIDModels.load(exported["dir"], "float32")
    features = reid.extract(test_images)
    none = take(features, np.zeros(0, int))
    assert reid.score(none, none).shape == (0,)
    with pytest.raises(ValueError, match="pairs_per_invoke must be >= 1 or None, got 0"):
        reid.score(take(features, [0]), features, pairs_per_invoke=0)
    with pytest.raises(ValueError, match="cannot pair 2 crops with 3"):
        reid.score(take(features, [0, 1]), take(features, [0, 1, 2]))


def test_runtime_names_missing_and_unknown_inputs(exported):
    scorer = TFLiteModel(str(model_file(exported["dir"], "scorer", "float32")))
    with pytest.raises(ValueError, match=r"missing \['a_high_map'.*unknown \['a_map'\]"):
        scorer(a_map=np.zeros((1, 2)))
    with pytest.raises(TypeError, match="input 'images' of .* must be uint8, got float32"):
        TFLiteModel(str(model_file(exported["dir"], "extractor", "int8"))).run_quantized(
            images=np.zeros((1,) + IMAGE_SIZE + (3,), np.float32)
        )


def test_changed_model_file_is_refused(exported, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(exported["dir"], copy)
    with open(model_file(copy, "scorer", "float32"), "ab") as f:
        f.write(b"\0")
    with pytest.raises(ValueError, match=r"scorer_float32-[0-9a-f]{12}.tflite does not match its sha256 in metadata.json"):
        ReIDModels.load(copy, "float32")
    with pytest.raises(ValueError, match=r"mode 'int4' is not in .*metadata.json; exported modes: dynamic, float16"):
        ReIDModels.load(copy, "int4")


def _snapshot(folder):
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


def test_a_failed_conversion_leaves_the_old_export_untouched(exported, keras_model, tmp_path, monkeypatch):
    out = tmp_path / "out"
    shutil.copytree(exported["dir"], out)
    before = _snapshot(out)
    real_converter = keras_msreid.export.convert._converter

    def failing_converter(saved_model_dir, mode, *args):
        converter = real_converter(saved_model_dir, mode, *args)
        if mode == "float16":
            converter.convert = lambda: (_ for _ in ()).throw(RuntimeError("simulated converter crash"))
        return converter

    monkeypatch.setattr(keras_msreid.export.convert, "_converter", failing_converter)
    with pytest.raises(RuntimeError, match="simulated converter crash"):
        export_model(keras_model, out, modes=["float16"])
    assert _snapshot(out) == before


def _float32_only(exported, monkeypatch, source_mode="float32"):
    """Skips the (slow) conversion: the float32 "conversion" hands back the fixture's `source_mode` files."""
    monkeypatch.setattr(
        keras_msreid.export.convert,
        "convert_keras_model",
        lambda model, modes, *args, what, **kwargs: {"float32": model_file(exported["dir"], what, source_mode).read_bytes()},
    )


def test_a_failed_write_leaves_the_old_export_usable(exported, keras_model, tmp_path, monkeypatch):
    out = tmp_path / "out"
    shutil.copytree(exported["dir"], out)
    before = _snapshot(out)
    # New bytes for every file (the float16 models stand in for a retrained model's float32 ones).
    _float32_only(exported, monkeypatch, source_mode="float16")
    written = []
    real_write = keras_msreid.export.convert.atomic_write_bytes

    def write_then_fail(path, data):
        if written:
            raise OSError("simulated disk full")
        real_write(path, data)
        written.append(path.name)

    monkeypatch.setattr(keras_msreid.export.convert, "atomic_write_bytes", write_then_fail)
    with pytest.raises(OSError, match="simulated disk full"):
        export_model(keras_model, out, modes=["float32"])
    # The old metadata and every file it names are untouched: the old export still loads and verifies.
    assert {name: data for name, data in _snapshot(out).items() if name in before} == before
    reid = ReIDModels.load(out, "float32")
    assert reid.metadata == read_metadata(exported["dir"])
    assert written and written[0] not in before and written[0].startswith("extractor_float32-")
    assert not [name for name in os.listdir(out) if ".partial" in name]


def test_a_new_export_replaces_only_the_files_the_old_one_named(exported, keras_model, tmp_path, monkeypatch,
                                                                 capsys):
    out = tmp_path / "out"
    shutil.copytree(exported["dir"], out)
    old_files = {entry["file"] for models in read_metadata(out)["models"].values() for entry in models.values()}
    (out / "README.txt").write_text("the user's")
    _float32_only(exported, monkeypatch)
    metadata = export_model(keras_model, out, modes=["float32"])
    new_files = {entry["file"] for entry in metadata["models"]["float32"].values()}
    assert sorted(os.listdir(out)) == sorted(new_files | {"metadata.json", "README.txt"})
    assert new_files <= old_files  # the same float32 bytes keep their content-hashed names
    ReIDModels.load(out, "float32")
    # Validating a mode the export no longer holds names what it does hold, before any work.
    assert msreid_main(["validate", str(out), "--dataset", "market1501", "--root", "unused", "--modes", "int8"]) == 2
    assert f"{out} has no int8 export (it has float32)" in capsys.readouterr().err


def test_a_foreign_metadata_file_is_refused_before_writing(keras_model, exported, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "metadata.json").write_text('{"camera": "front door"}')
    _float32_only(exported, monkeypatch)
    with pytest.raises(ValueError, match=r"metadata.json is not the metadata of an msreid export"):
        export_model(keras_model, out, modes=["float32"])
    assert os.listdir(out) == ["metadata.json"]


def test_write_atomic_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(b"old")
    with pytest.raises(TypeError):
        atomic_write_bytes(path, "not bytes")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["model.tflite"]


class _LayerOf(keras.layers.Layer):
    def __init__(self, function, **kwargs):
        super().__init__(**kwargs)
        self.function = function

    def call(self, inputs):
        return self.function(inputs)


@pytest.mark.parametrize(
    "function,message",
    [
        (lambda x: tf.linalg.inv(tf.reshape(x, (-1, 4, 4))), r"MatrixInverse \(Flex op"),
        (lambda x: tf.math.special.bessel_i0e(x), r"BesselI0e \(custom op"),
    ],
)
def test_an_op_outside_the_builtins_is_named(function, message):
    signal = keras.Input((16,), name="signal")
    model = keras.Model(signal, {"out": _LayerOf(function)(signal)})
    with pytest.raises(UnsupportedOpsError, match=r"the model needs ops outside TFLITE_BUILTINS: " + message):
        convert_keras_model(model, ["float32"], what="model")


def test_int8_needs_calibration_images(keras_model, tmp_path):
    with pytest.raises(ValueError, match="int8 export of the extractor needs calibration images"):
        export_model(keras_model, tmp_path / "out", modes=["int8"])
    assert not (tmp_path / "out").exists()
