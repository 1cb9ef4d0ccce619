"""scripts/convert_flat_model.py: a model saved before the backbone split keeps its outputs."""

import json
import pathlib
import subprocess
import sys

import numpy as np

from keras_msreid.models import MSReID, load_model

DATA = pathlib.Path(__file__).with_name("data")
SCRIPT = pathlib.Path(__file__).parents[1] / "scripts" / "convert_flat_model.py"
# Saved by the code of commit 08f4841 (the flat MSReID) with every weight and batch-norm
# statistic moved off its initial value, with its extractor's and scorer's outputs.
OLD = DATA / "flat_msreid_2026-12-01.keras"
EXPECTED = json.loads((DATA / "flat_msreid_2026-12-01.json").read_text())


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=300)


def test_converted_model_gives_the_old_models_outputs(tmp_path):
    result = run(OLD, tmp_path / "new.keras")
    assert result.returncode == 0, result.stderr[-2000:]
    model = load_model(tmp_path / "new.keras")
    assert isinstance(model, MSReID) and model.levels == ("low", "mid", "high") and model.backbone.parts == 2
    assert model.loss_weights["ranking"] == 0.5  # the compile config comes across
    images = np.random.default_rng(1).uniform(0, 255, (3, 64, 32, 3)).astype("float32")
    features = model.extractor()(images)
    names = model.scorer_feature_names
    scores = model.scorer()({**{f"a_{n}": features[n][:2] for n in names}, **{f"b_{n}": features[n][1:] for n in names}})
    np.testing.assert_allclose(features["embedding"], EXPECTED["embedding"], atol=1e-5)
    np.testing.assert_allclose(scores["score"], EXPECTED["score"], atol=1e-5)
    np.testing.assert_allclose(float(np.sum(features["high_map"])), EXPECTED["high_map_sum"], rtol=1e-5)


def test_refuses_a_model_of_this_version_and_an_existing_output(tmp_path):
    (tmp_path / "taken.keras").write_bytes(b"mine")
    result = run(OLD, tmp_path / "taken.keras")
    assert result.returncode == 2 and "taken.keras exists" in result.stderr
    assert (tmp_path / "taken.keras").read_bytes() == b"mine"
    assert run(OLD, tmp_path / "new.keras").returncode == 0
    result = run(tmp_path / "new.keras", tmp_path / "again.keras")
    assert result.returncode == 2 and "not a flat MSReID" in result.stderr
    assert not (tmp_path / "again.keras").exists()
