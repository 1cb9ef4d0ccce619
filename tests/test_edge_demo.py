"""The edge demo end to end: real TFLite files, the real LiteRT interpreter, synthetic videos.

Two exports are made once per module:

- a tiny MSReID with random weights, exported to int8 by `export.convert.export_model`:
  checks that the demo maps the real model's tensors by name and runs it without
  TensorFlow;
- a colour-descriptor stand-in (a few builtin ops: average colours, soft colour
  bins, cosine) written in the same export format: it tells the rendered people
  apart without training, so the demo's identity logic can be checked on video.
  The model is not what these tests are about; training a real one to that point
  takes minutes.

The demo itself always runs in a subprocess where importing tensorflow, keras or
keras_msreid raises ImportError.
"""

import hashlib
import json
import os
import subprocess
import sys
import textwrap

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from conftest import TINY_MODEL
from keras_msreid.edge_demo import cli
from keras_msreid.edge_demo.detectors import TFLiteDetector
from keras_msreid.edge_demo.events import FIELDS
from keras_msreid.edge_demo.gallery import Gallery
from keras_msreid.edge_demo.reid_models import FORMAT_VERSION, ReIDModels
from keras_msreid.export.convert import export_model
from keras_msreid.metrics.tracking import read_event_log, score_tracks
from keras_msreid.models import MSReID
from keras_msreid.synthetic import (camera_style, draw_person, identity_appearance, render_crop,
                                    write_pedestrian_video)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE_SIZE = (64, 32)
PEOPLE = (3, 8)  # brown clothes, green top: the colour stand-in separates them by a wide margin
VIDEO = dict(frames=60, size=(240, 320), person_height=(130, 150), fps=10)

# Runs `python -m edge_demo ...` with tensorflow, keras and keras_msreid made unimportable,
# then reports any attempt to import them.
WITHOUT_TENSORFLOW = textwrap.dedent("""
    import atexit, runpy, sys

    class NoTensorFlow:
        attempts = []

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "keras", "keras_msreid", "tf_keras"):
                NoTensorFlow.attempts.append(name)
                raise ImportError(f"{name} is blocked: the edge demo must run without TensorFlow")
            return None

    sys.meta_path.insert(0, NoTensorFlow())
    atexit.register(lambda: print("blocked imports:", sorted(set(NoTensorFlow.attempts)), file=sys.stderr))
    sys.argv[0] = "edge_demo"
    runpy.run_module("edge_demo", run_name="__main__", alter_sys=True)
""")


def run_demo(*args, timeout=120):
    """Runs the demo without TensorFlow; returns (summary dict, stdout, stderr)."""
    result = subprocess.run([sys.executable, "-c", WITHOUT_TENSORFLOW, *map(str, args)], cwd=REPO,
                            capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, "PYTHONPATH": REPO})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "blocked imports: []" in result.stderr, result.stderr
    summary = next(json.loads(line[len("summary "):]) for line in result.stdout.splitlines()
                   if line.startswith("summary "))
    return summary, result.stdout, result.stderr


# ------------------------------------------------------------------- colour stand-in
PALETTE = np.array([(28, 28, 32), (232, 232, 226), (128, 128, 132), (32, 42, 92), (52, 100, 188), (178, 34, 40),
                    (44, 118, 62), (222, 196, 56), (188, 168, 128), (108, 70, 42), (226, 142, 172), (108, 62, 138)],
                   np.float32) / 255.0
GRID = (16, 8)  # 4x4-pixel cells
BODY = (slice(3, 12), slice(3, 5))  # the torso and legs of a detector's box


def _unit(x):
    return x / ops.sqrt(ops.sum(x * x, axis=-1, keepdims=True) + 1e-6)


def colour_models(query_batch=1):
    """Extractor and scorer with MSReID's tensor names; score = sigmoid(40 (cos - 0.9)) of body colours.

    `query_batch` None gives a scorer of aligned pairs, as format version 1 exported.
    """
    images = keras.Input(IMAGE_SIZE + (3,), name="images")
    cells = keras.layers.AveragePooling2D(4)(images / 255.0)
    distance = (ops.sum(cells * cells, -1, keepdims=True) - 2 * ops.matmul(cells, PALETTE.T)
                + ops.sum(PALETTE ** 2, -1))
    colour_map = _unit(ops.exp(-distance / (2 * 0.12 ** 2)))
    body = colour_map[:, BODY[0], BODY[1]]
    embedding = _unit(ops.mean(body, axis=(1, 2)))
    theta = ops.zeros_like(embedding[:, :1])[:, None, :] + np.array([0.6, 0.25, 0.0, 0.0], np.float32)
    extractor = keras.Model(images, {"embedding": embedding, "high_map": colour_map,
                                     "high_patch": ops.expand_dims(body, 1), "high_theta": theta})
    patch_shape = (1, BODY[0].stop - BODY[0].start, BODY[1].stop - BODY[1].start, len(PALETTE))
    # One query (a batch of 1) against many rows, as the exported scorer takes them.
    batch = {"a": query_batch, "b": None}
    inputs = {f"{side}_{name}": keras.Input(shape, batch_size=batch[side], name=f"{side}_{name}") for side in "ab"
              for name, shape in (("high_map", GRID + (len(PALETTE),)), ("high_patch", patch_shape))}
    codes = {side: _unit(ops.mean(inputs[f"{side}_high_map"][:, BODY[0], BODY[1]], axis=(1, 2))
                         + ops.mean(inputs[f"{side}_high_patch"], axis=(1, 2, 3))) for side in "ab"}
    score = ops.sigmoid(40.0 * (ops.sum(codes["a"] * codes["b"], axis=-1) - 0.9))
    return extractor, keras.Model(inputs, {"score": score})


def to_tflite(model):
    specs = [tf.TensorSpec(t.shape, tf.float32, name=t.name) for t in model.inputs]
    names = [t.name for t in model.inputs]

    @tf.function(input_signature=specs)
    def serve(*tensors):
        return model(dict(zip(names, tensors)) if len(tensors) > 1 else tensors[0])

    return tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], model).convert()


@pytest.fixture(scope="module")
def colour_export(tmp_path_factory):
    folder = tmp_path_factory.mktemp("colour_export")
    extractor, scorer = colour_models()
    entries = {}
    for role, model in (("extractor", extractor), ("scorer", scorer)):
        model_bytes = to_tflite(model)
        (folder / f"{role}_float32.tflite").write_bytes(model_bytes)
        entries[role] = {"file": f"{role}_float32.tflite", "sha256": hashlib.sha256(model_bytes).hexdigest()}
    metadata = {"format_version": FORMAT_VERSION, "image_size": list(IMAGE_SIZE),
                "input": {"color": "RGB", "pixel_range": [0, 255], "layout": "NHWC"},
                "embedding_dim": len(PALETTE), "levels": ["high"], "parts": 1, "patch_size": [9, 2],
                "scorer_feature_names": ["high_map", "high_patch"], "match_threshold": 0.5,
                "source_model": {"path": None, "sha256": "colour-stand-in"}, "models": {"float32": entries}}
    (folder / "metadata.json").write_text(json.dumps(metadata))
    return folder


# ------------------------------------------------------------------------ real export
@pytest.fixture(scope="module")
def msreid_export(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = MSReID.from_options(**TINY_MODEL)
    model(np.zeros((1,) + IMAGE_SIZE + (3,), np.float32))
    # Batch-norm statistics away from their initial values, as after training.
    rng = np.random.default_rng(1)
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(size=layer.moving_mean.shape) * 0.1)
    crops = person_crops(4, seed=0)
    folder = tmp_path_factory.mktemp("msreid_export")
    export_model(model, folder, modes=("int8",), calibration_images=crops)
    return folder, model, crops


def person_crops(per_person, seed):
    """RGB uint8 crops of the video's people, as other cameras see them."""
    rng = np.random.default_rng(seed)
    return np.stack([render_crop(identity_appearance(person, 0), camera_style(camera, 0), rng, size=IMAGE_SIZE)
                     for person in PEOPLE for camera in range(per_person)])


# --------------------------------------------------------------------------- videos
def person_of(event, truth):
    """Index of the ground-truth person under the event box's centre, None where people overlap."""
    x, y, w, h = event["box"]
    cx, cy = x + w / 2, y + h / 2
    hits = [p["person"] for p in truth[event["frame"]]
            if p["box"][0] <= cx <= p["box"][0] + p["box"][2] and p["box"][1] <= cy <= p["box"][1] + p["box"][3]]
    return hits[0] if len(hits) == 1 else None


def truth_frames(truth):
    """The renderer's ground truth as `score_tracks` takes it: every frame, every person in view."""
    return {frame: [(person["person"], person["box"]) for person in people] for frame, people in enumerate(truth)}


def identities_by_person(events, truth):
    found = {}
    for event in events:
        person = person_of(event, truth)
        if person is not None and event["identity"] is not None:
            found.setdefault(person, set()).add(event["identity"])
    return found


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Two street scenes: people 3 and 8 crossing, then 8 and 3 again in another scene."""
    folder = tmp_path_factory.mktemp("videos")
    made = {}
    for seed, order in ((0, PEOPLE), (1, PEOPLE[::-1])):
        path = folder / f"walk{seed}.mp4"
        truth = write_pedestrian_video(str(path), [identity_appearance(p, 0) for p in order], seed=seed, **VIDEO)
        made[seed] = (path, truth, order)
    return made


def test_demo_without_tensorflow_keeps_identities_across_frames_and_restarts(colour_export, videos, tmp_path):
    gallery = tmp_path / "gallery.sqlite"
    per_run = []
    for seed in (0, 1):
        path, truth, order = videos[seed]
        events_path = tmp_path / f"events{seed}.jsonl"
        summary, stdout, _ = run_demo(
            "run", "--model-dir", colour_export, "--mode", "float32", "--source", path, "--headless",
            "--gallery", gallery, "--events", events_path, "--out-video", tmp_path / f"annotated{seed}.mp4",
            "--stats-every", 0.5, "--threads", 1)
        assert summary["frames"] == VIDEO["frames"]
        assert "fps | detect" in stdout and "total: frames 60" in stdout
        events = [json.loads(line) for line in events_path.read_text().splitlines()]
        assert all(list(event) == list(FIELDS) for event in events)
        assert {event["frame"] for event in events} <= set(range(VIDEO["frames"]))
        scores = score_tracks(truth_frames(truth), read_event_log(events_path))
        # Against the renderer's ground truth (motmetrics, IoU >= 0.5): HOG's person boxes, not its
        # windows, and each person's identity kept; the two switches are each person's track id
        # while undecided (confirm-frames) giving way to the identity.
        assert scores["precision"] >= 0.95 and scores["recall"] >= 0.65, scores
        assert scores["idf1"] >= 0.7 and scores["num_switches"] <= 2, scores
        found = identities_by_person(events, truth)
        # Every rendered person got exactly one identity, each its own.
        assert sorted(found) == [0, 1], found
        assert all(len(ids) == 1 for ids in found.values()), found
        per_run.append({order[person]: ids.pop() for person, ids in found.items()})
        if seed == 0:
            assert summary["identities_created"] == 2
            kinds = [e["event"] for e in events]
            assert kinds.count("new_identity") == 2 and "identified" not in kinds
    # After a restart, in another scene, both are recognised: nobody new is enrolled.
    assert summary["identities_created"] == 0 and summary["identities_total"] == 2
    assert per_run[1] == per_run[0]
    capture = cv2.VideoCapture(str(tmp_path / "annotated1.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == VIDEO["frames"]
    capture.release()


def test_real_int8_export_runs_in_the_demo_without_tensorflow(msreid_export, videos, tmp_path):
    folder, model, _ = msreid_export
    path = videos[0][0]
    events_path = tmp_path / "events.jsonl"
    summary, _, _ = run_demo("run", "--model-dir", folder, "--mode", "int8", "--source", path, "--headless",
                             "--gallery", tmp_path / "g.sqlite", "--events", events_path, "--max-frames", 30)
    assert summary["frames"] == 30 and summary["mode"] == "int8"
    events = [json.loads(line) for line in events_path.read_text().splitlines()]
    assert events and {e["event"] for e in events} <= {"seen", "new_identity", "identified"}
    assert summary["identities_total"] >= 1
    gallery = Gallery(tmp_path / "g.sqlite")
    stored = gallery.features(gallery.sample_ids[:1].tolist())
    assert sorted(stored) == sorted(model.scorer_feature_names)
    assert stored["low_map"].shape == (1, 16, 8, 8)
    gallery.close()


def test_int8_outputs_are_found_by_name_and_dequantized(msreid_export):
    folder, model, crops = msreid_export
    reid = ReIDModels.load(folder, "int8", num_threads=1)
    assert reid.image_size == IMAGE_SIZE and reid.feature_names == model.scorer_feature_names
    features = reid.extract(crops)
    expected = model.extractor().predict(crops.astype(np.float32), verbose=0)
    for name, value in features.items():
        reference = expected[name]
        assert value.shape == reference.shape, name
        # A swapped or badly dequantized output would not follow the float model.
        correlation = np.corrcoef(value.ravel(), reference.ravel())[0, 1]
        assert correlation > 0.9, (name, correlation)
        assert np.abs(value - reference).mean() < 0.1 * np.abs(reference).mean() + 0.02, name
    np.testing.assert_allclose(np.linalg.norm(features["embedding"], axis=1), 1.0, atol=1e-5)
    first, second = np.array([0, 1, 2, 5]), np.array([1, 0, 6, 7])
    scores = reid.score({n: v[first] for n, v in features.items()}, {n: v[second] for n, v in features.items()})
    keras_scores = model.scorer("shift_add").predict(
        {f"{side}_{name}": expected[name][index] for side, index in (("a", first), ("b", second))
         for name in model.scorer_feature_names}, verbose=0)["score"]
    np.testing.assert_allclose(scores, keras_scores, atol=0.05)


def test_enrolled_people_are_recognised_by_name_on_video(colour_export, videos, tmp_path, capsys):
    gallery = tmp_path / "g.sqlite"
    # Alice (person 3): crops from other cameras, and a file that is not an image.
    alice = tmp_path / "alice"
    alice.mkdir()
    for index, crop in enumerate(person_crops(3, seed=5)[:3]):
        cv2.imwrite(str(alice / f"{index}.png"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    (alice / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    assert cli.main(["enroll", "--gallery", str(gallery), "--model-dir", str(colour_export), "--mode", "float32",
                     "--name", "Alice", str(alice)]) == 0
    output = capsys.readouterr()
    assert f"skipped {alice / 'broken.jpg'}: not a readable image" in output.err
    assert "enrolled 3 images of Alice as identity 1 (3 samples kept)" in output.out
    # Bob (person 8): one whole photo, the person found by the detector.
    bob = tmp_path / "bob"
    bob.mkdir()
    photo = np.full((300, 400, 3), 150, np.uint8)
    draw_person(photo, identity_appearance(8, 0), foot=(200, 270), height=220, view="right", phase=0.6)
    cv2.imwrite(str(bob / "photo.jpg"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    assert cli.main(["enroll", "--gallery", str(gallery), "--model-dir", str(colour_export), "--mode", "float32",
                     "--name", "Bob", "--detect", str(bob)]) == 0
    assert "enrolled 1 images of Bob as identity 2" in capsys.readouterr().out
    assert cli.main(["list", "--gallery", str(gallery), "--thumbnails", str(tmp_path / "thumbs")]) == 0
    assert [line.split()[:3] for line in capsys.readouterr().out.splitlines()[1:]] == [
        ["1", "Alice", "3"], ["2", "Bob", "1"]]
    assert cv2.imread(str(tmp_path / "thumbs" / "identity_1.jpg")).shape == IMAGE_SIZE + (3,)

    path, truth, order = videos[0]
    events_path = tmp_path / "events.jsonl"
    summary, _, _ = run_demo("run", "--model-dir", colour_export, "--mode", "float32", "--source", path,
                             "--headless", "--gallery", gallery, "--events", events_path)
    events = [json.loads(line) for line in events_path.read_text().splitlines()]
    named = {}
    for event in events:
        person = person_of(event, truth)
        if person is not None and event["identity"] is not None:
            named.setdefault(order[person], set()).add((event["identity"], event["name"]))
    assert named == {3: {(1, "Alice")}, 8: {(2, "Bob")}}
    assert summary["identities_created"] == 0


def test_model_folder_errors_name_the_problem(colour_export, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"model folder .*empty does not exist"):
        ReIDModels.load(tmp_path / "empty")
    with pytest.raises(ValueError, match=r"mode 'int8' is not in .*metadata\.json; exported modes: float32"):
        ReIDModels.load(colour_export, "int8")
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for name in os.listdir(colour_export):
        (damaged / name).write_bytes((colour_export / name).read_bytes())
    with open(damaged / "scorer_float32.tflite", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ValueError, match=r"scorer_float32\.tflite does not match its sha256"):
        ReIDModels.load(damaged, "float32")
    assert cli.main(["run", "--model-dir", str(colour_export), "--mode", "float32", "--source",
                     str(tmp_path / "nowhere.mp4"), "--gallery", str(tmp_path / "g.sqlite"), "--headless"]) == 2


@pytest.mark.parametrize("named_outputs", [True, False], ids=["signature", "tf1-style"])
def test_tflite_ssd_detector_keeps_confident_people_in_frame_pixels(tmp_path, named_outputs):
    boxes = np.array([[[0.1, 0.2, 0.9, 0.4], [0.0, 0.5, 0.5, 1.0], [0.2, 0.6, 0.8, 0.9]]], np.float32)
    classes = np.array([[0.0, 0.0, 2.0]], np.float32)  # the third is not a person
    scores = np.array([[0.8, 0.3, 0.9]], np.float32)

    class Detector(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec((1, 32, 32, 3), tf.float32, name="image")])
        def detect(self, image):
            zero = tf.reduce_mean(image) * 0.0  # keeps the input in the graph
            outputs = (boxes + zero, classes + zero, scores + zero, tf.constant([3.0]) + zero)
            if named_outputs:
                return dict(zip(("detection_boxes", "detection_classes", "detection_scores", "num_detections"),
                                outputs))
            return outputs  # in the order of TFLite_Detection_PostProcess

    module = Detector()
    # Without the module the converter writes no signature, like the TF1-era SSD models.
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.detect.get_concrete_function()],
                                                               module if named_outputs else None)
    path = tmp_path / "ssd.tflite"
    path.write_bytes(converter.convert())
    detector = TFLiteDetector(str(path), person_class=0, min_score=0.5)
    assert bool(detector.model.interpreter.get_signature_list()) == named_outputs
    found = detector(np.zeros((100, 200, 3), np.uint8))
    assert [(d.box, round(d.score, 2)) for d in found] == [((40, 10, 40, 80), 0.8)]
