"""`msreid report` and `msreid search` end to end on a tiny model and a tiny synthetic dataset."""

import json

import cv2
import keras
import numpy as np
import pytest

from conftest import TINY_MODEL
from keras_msreid.cli import main
from keras_msreid.data.pipeline import load_image
from keras_msreid.datasets import build_dataset
from keras_msreid.models import MSReID
from keras_msreid.retrieval.feature_store import FeatureStore
from keras_msreid.synthetic import write_market1501
from keras_msreid.training.config import TrainConfig
from keras_msreid.utils.file_hash import sha256_of_file



@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder as `msreid train` leaves it: config.yaml and model.keras."""
    root = tmp_path_factory.mktemp("synthetic")
    write_market1501(root, num_ids=8, num_cameras=2, seed=0, image_size=(64, 32), overwrite=True)
    run = tmp_path_factory.mktemp("run")
    TrainConfig(dataset="market1501", root=str(root), image_size=(64, 32),
                model={"patch_size": (3, 2)}).save(run / "config.yaml")
    keras.utils.set_random_seed(0)
    model = MSReID.from_options(num_classes=4, **TINY_MODEL)
    model.build()
    model.save(run / "model.keras")
    return run, model


def test_report_of_a_run_compared_with_another(run_dir, tmp_path, capsys):
    run_dir, _ = run_dir
    other = tmp_path / "baseline"
    other.mkdir()
    (other / "metrics.json").write_text(json.dumps({"embedding": {"rank1": 0.5, "cmc": [0.5, 0.75, 1.0]}}))
    assert main(["report", str(run_dir), "--compare", str(other), "--queries", "3", "--top", "5"]) == 0
    report = run_dir / "report"
    metrics = json.loads((report / "metrics.json").read_text())
    assert sorted(metrics) == ["csn", "embedding", "fusion"]
    assert 0 < metrics["fusion"]["mAP"] <= 1
    ranked = cv2.imread(str(report / "ranked_list.png"))
    assert ranked.shape[0] >= 3 * 128 and ranked.shape[1] >= 6 * 64  # 3 rows, query + 5 ranked
    assert cv2.imread(str(report / "cmc.png")).shape == (450, 600, 3)
    attention = cv2.imread(str(report / "attention.png"))
    assert attention.shape[0] > 64 * 3 and attention.shape[1] > 2 * 32 * 3
    settings = json.loads((report / "report.json").read_text())["settings"]
    assert settings["pictured_ranking"] == "fusion" and len(settings["queries"]) == 3
    assert "fusion: rank-1" in capsys.readouterr().out


def test_report_errors_name_what_is_missing(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert f"{tmp_path} is not a run folder of msreid train (no config.yaml)" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "m.keras")]) == 2
    assert "a model file needs --dataset, --root, --out (a run folder gives them)" in capsys.readouterr().err


def test_search_builds_the_store_then_refuses_another_model(run_dir, tmp_path, capsys):
    run_dir, model = run_dir
    config = TrainConfig.load(run_dir / "config.yaml")
    dataset = build_dataset("market1501", config.root)
    store = tmp_path / "store"
    arguments = ["search", str(run_dir / "model.keras"), "--query", dataset.query[0].path, "--store", str(store),
                 "--top", "4"]
    assert main(arguments + ["--dataset", "market1501", "--root", config.root]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"query {dataset.query[0].path}" and len(lines) == 2 + 4
    assert lines[2].split()[0] == "1" and lines[2].split()[-1] in {record.path for record in dataset.gallery}
    saved = FeatureStore.load(store)
    assert saved.model_sha256 == sha256_of_file(run_dir / "model.keras")
    assert saved.paths == [record.path for record in dataset.gallery]
    images = np.stack([load_image(record.path, model.image_size).numpy() for record in dataset.gallery])
    expected = model.extractor()(images)
    assert sorted(saved.features) == sorted(["embedding"] + model.scorer_feature_names)
    for name, codec in saved.codecs.items():  # each as its codec keeps it
        kept = codec.decode(codec.encode(expected[name]))
        np.testing.assert_allclose(saved.features[name], kept, atol=2e-3, err_msg=name)

    # Without --query the store is only maintained: an image removed, then added back by the sync.
    assert main(["search", str(run_dir / "model.keras"), "--store", str(store),
                 "--remove", dataset.gallery[0].path]) == 0
    assert f"{len(dataset.gallery) - 1} images" in capsys.readouterr().out
    assert main(["search", str(run_dir / "model.keras"), "--store", str(store),
                 "--dataset", "market1501", "--root", config.root]) == 0
    assert f"{len(dataset.gallery)} images" in capsys.readouterr().out
    assert sorted(FeatureStore.load(store).paths) == sorted(record.path for record in dataset.gallery)
    synced = FeatureStore.load(store)
    assert main(["search", str(run_dir / "model.keras"), "--store", str(store), "--compact"]) == 0
    assert f"{len(dataset.gallery)} images" in capsys.readouterr().out
    compacted = FeatureStore.load(store)
    assert len(compacted.manifest["segments"]) == 1 and compacted.manifest["removed"] == []
    assert compacted.paths == synced.paths
    np.testing.assert_array_equal(compacted.features["embedding"], synced.features["embedding"])

    other = tmp_path / "other.keras"
    other.write_bytes((run_dir / "model.keras").read_bytes() + b"\0")
    assert main(["search", str(other), "--query", dataset.query[0].path, "--store", str(store)]) == 2
    assert "was extracted with another model" in capsys.readouterr().err
