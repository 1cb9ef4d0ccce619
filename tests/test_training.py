import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_msreid.models  # noqa: F401  (registers classes for safe loading)
from keras_msreid.synthetic import write_market1501
from keras_msreid.training.config import TrainConfig

JOB = pathlib.Path(__file__).with_name("training_job.py")


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "synthetic"
    write_market1501(root, num_ids=16, num_cameras=2, seed=3)
    return root


def run_job(root, out_dir, *extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONHASHSEED="0")
    return subprocess.run(
        [sys.executable, str(JOB), str(root), str(out_dir), *extra],
        capture_output=True, text=True, timeout=600, env=env,
    )


def test_training_killed_mid_epoch_resumes_to_the_same_result(tiny_dataset, tmp_path):
    reference = run_job(tiny_dataset, tmp_path / "reference", "--no-evaluation")
    assert reference.returncode == 0, reference.stderr[-3000:]

    killed = run_job(tiny_dataset, tmp_path / "resumed", "--kill-at-step", "7")
    assert killed.returncode == -9  # SIGKILL, in the middle of the second epoch (4 steps each)
    state = json.loads((tmp_path / "resumed" / "checkpoint" / "state.json").read_text())
    assert state["global_step"] == 6  # the last checkpoint before the kill
    assert not (tmp_path / "resumed" / "model.keras").exists()

    resumed = run_job(tiny_dataset, tmp_path / "resumed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected = keras.saving.load_model(tmp_path / "reference" / "model.keras", safe_mode=True)
    actual = keras.saving.load_model(tmp_path / "resumed" / "model.keras", safe_mode=True)
    for want, got in zip(expected.weights, actual.weights):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6, err_msg=want.path)
    metrics = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    assert set(metrics) == {"embedding", "csn", "fusion"}
    history = (tmp_path / "resumed" / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == ["0", "1", "2"]


def test_trains_under_mirrored_strategy_on_two_logical_cpus(tiny_dataset, tmp_path):
    result = run_job(tiny_dataset, tmp_path / "mirrored", "--mirrored", "--no-evaluation")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "replicas 2" in result.stdout
    history = (tmp_path / "mirrored" / "history.csv").read_text().splitlines()
    header, row = history[0].split(","), history[1].split(",")
    assert np.isfinite(float(row[header.index("loss")]))


def test_config_yaml_round_trip_and_unknown_keys(tmp_path):
    config = TrainConfig(dataset="cuhk01", root="/data/cuhk01", model={"levels": ("high",)},
                         dataset_options={"split_seed": 2})
    config.save(tmp_path / "config.yaml")
    assert TrainConfig.load(tmp_path / "config.yaml") == config
    assert TrainConfig.load(tmp_path / "config.yaml", epochs=5).epochs == 5
    (tmp_path / "bad.yaml").write_text("dataset: market1501\nlearning_rat: 0.1\n")
    with pytest.raises(ValueError, match=r"bad.yaml: unknown training options \['learning_rat'\]"):
        TrainConfig.load(tmp_path / "bad.yaml")
    with pytest.raises(ValueError, match="strategy must be default, mirrored or multi_worker"):
        TrainConfig(strategy="tpu")


class _Diverge(keras.callbacks.Callback):
    """Turns one weight to NaN after a step, as an exploding gradient would."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == self.step:
            weight = self.model.trainable_weights[0]
            weight.assign(weight * float("nan"))


def test_a_diverged_run_never_replaces_a_finite_model(tiny_dataset, tmp_path):
    from keras_msreid.errors import UserError
    from keras_msreid.training.trainer import train
    from training_job import tiny_config

    config = tiny_config(str(tiny_dataset), str(tmp_path / "run"))
    config.epochs, config.final_evaluation = 1, False
    train(config, verbose=0)
    model_bytes = (tmp_path / "run" / "model.keras").read_bytes()
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert state["global_step"] == 4

    config.epochs = 3  # continue the finished run, and let it blow up in its second epoch
    with pytest.raises(UserError, match=r"training diverged .*model.keras was not written \(the previous one is kept\); "
                                        r"the last finite checkpoint is step 6"):
        train(config, extra_callbacks=[_Diverge(step=6)], verbose=0)
    assert (tmp_path / "run" / "model.keras").read_bytes() == model_bytes
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert state["global_step"] == 6  # step 6's checkpoint was taken before the NaN weights; none after
    model = keras.saving.load_model(tmp_path / "run" / "model.keras", safe_mode=True)
    assert all(np.isfinite(w.numpy()).all() for w in model.weights)


def test_a_finished_run_run_again_keeps_its_model_file_and_evaluates_an_epoch_a_kill_skipped(tiny_dataset, tmp_path):
    from keras_msreid.training.checkpoint import load_state
    from keras_msreid.training.evaluation_callback import read_curve
    from keras_msreid.training.trainer import train
    from training_job import tiny_config

    config = tiny_config(str(tiny_dataset), str(tmp_path / "run"))
    config.epochs, config.eval_every, config.final_evaluation = 1, 1, False
    first, _ = train(config, verbose=0)
    model_bytes = (tmp_path / "run" / "model.keras").read_bytes()
    # As if the run had been killed after its last checkpoint, during the epoch's evaluation.
    curve = tmp_path / "run" / "evaluations.csv"
    evaluated = read_curve(curve)
    assert [(row["epoch"], row["step"]) for row in evaluated] == [(1, 4)]
    curve.write_text(curve.read_text().splitlines()[0] + "\n")

    again, _ = train(config, verbose=0)  # the quickstart run twice: the export's fingerprint must not change
    assert (tmp_path / "run" / "model.keras").read_bytes() == model_bytes
    assert int(again.optimizer.iterations.numpy()) == int(first.optimizer.iterations.numpy()) == 4
    (row,) = read_curve(curve)  # the skipped evaluation is made up, once, at the checkpoint's clock
    assert (row["epoch"], row["step"], row["fusion_mAP"]) == (1, 4, evaluated[0]["fusion_mAP"])
    clock = load_state(tmp_path / "run" / "checkpoint")["training_cpu_seconds"]
    assert row["training_cpu_seconds"] == pytest.approx(clock, abs=1.0)
    for want, got in zip(first.weights, again.weights):
        np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=want.path)


def test_a_run_folder_keeps_its_loss_recipe_when_the_defaults_change(tiny_dataset, tmp_path, monkeypatch):
    from keras_msreid.errors import UserError
    from keras_msreid.models.msreid import DEFAULT_LOSS_OPTIONS, DEFAULT_LOSS_WEIGHTS
    from keras_msreid.training.config import TrainConfig
    from keras_msreid.training.trainer import check_run_folder, train
    from training_job import tiny_config

    config = tiny_config(str(tiny_dataset), str(tmp_path / "run"))
    config.epochs, config.final_evaluation, config.loss_weights = 1, False, {"triplet": 0.5}
    train(config, verbose=0)
    saved = TrainConfig.load(tmp_path / "run" / "config.yaml")
    assert saved.loss_weights == {**DEFAULT_LOSS_WEIGHTS, "triplet": 0.5}
    assert saved.loss_options == DEFAULT_LOSS_OPTIONS
    check_run_folder(config)  # the same command resumes it
    check_run_folder(saved)  # and so does its config.yaml
    monkeypatch.setitem(DEFAULT_LOSS_WEIGHTS, "ranking", 1.0)  # a later release's default
    with pytest.raises(UserError, match=r"holds a run with other options \(loss_weights.ranking 0.0 there, "
                                        r"1.0 here\); resume it with `msreid train --config .*config.yaml`"):
        check_run_folder(config)
    check_run_folder(saved)


def test_the_default_epochs_make_the_default_steps_and_the_run_folder_keeps_them(tiny_dataset, tmp_path, monkeypatch):
    from keras_msreid.training import config as config_module
    from keras_msreid.training.checkpoint import load_state
    from keras_msreid.training.config import TrainConfig, default_epochs
    from keras_msreid.training.trainer import train
    from training_job import tiny_config

    # 160 epochs, or more where an epoch is short of 7,680 / 160 = 48 steps.
    assert [default_epochs(steps) for steps in (48, 47, 24, 100, 7)] == [160, 164, 320, 160, 1098]

    monkeypatch.setattr(config_module, "DEFAULT_EPOCHS", 1)
    monkeypatch.setattr(config_module, "DEFAULT_MIN_STEPS", 7)  # 4 steps an epoch: 2 epochs
    config = tiny_config(str(tiny_dataset), str(tmp_path / "run"))
    config.epochs, config.final_evaluation = 0, False
    train(config, verbose=0)
    assert load_state(tmp_path / "run" / "checkpoint")["global_step"] == 8
    assert TrainConfig.load(tmp_path / "run" / "config.yaml").epochs == 2

    monkeypatch.setattr(config_module, "DEFAULT_MIN_STEPS", 15)  # a later release's default: 4 epochs
    train(config, verbose=0)  # the same command resumes the finished run: nothing more to train
    assert load_state(tmp_path / "run" / "checkpoint")["global_step"] == 8
    assert TrainConfig.load(tmp_path / "run" / "config.yaml").epochs == 2

    saved = TrainConfig.load(tmp_path / "run" / "config.yaml")
    saved.epochs = 0  # edited by hand back to the default: the default now, not zero epochs
    saved.save(tmp_path / "run" / "config.yaml")
    train(config, verbose=0)
    assert load_state(tmp_path / "run" / "checkpoint")["global_step"] == 16
    assert TrainConfig.load(tmp_path / "run" / "config.yaml").epochs == 4


def test_reader_flags_add_to_the_config_files_dataset_options(tmp_path):
    from keras_msreid.cli import _build_parser as build_parser
    from keras_msreid.cli.train import config_from_args

    TrainConfig(dataset="cuhk01", root="/data", dataset_options={"num_test_ids": 486, "split_seed": 2}).save(
        tmp_path / "config.yaml")
    args = build_parser().parse_args(["train", "--config", str(tmp_path / "config.yaml"), "--validation-ids", "50"])
    assert config_from_args(args).dataset_options == {"num_test_ids": 486, "split_seed": 2, "validation_ids": 50}
    args = build_parser().parse_args(["train", "--config", str(tmp_path / "config.yaml"), "--split-seed", "1"])
    assert config_from_args(args).dataset_options == {"num_test_ids": 486, "split_seed": 1}


def test_model_flags_replace_one_model_option_of_the_config(tmp_path):
    from keras_msreid.cli import _build_parser as build_parser
    from keras_msreid.cli.train import config_from_args

    TrainConfig(root="/data", model={"levels": ["low", "high"], "parts": 2}).save(tmp_path / "config.yaml")
    args = build_parser().parse_args(["train", "--config", str(tmp_path / "config.yaml"), "--levels", "high"])
    assert config_from_args(args).model == {"levels": ["high"], "parts": 2}
    args = build_parser().parse_args(["train", "--config", str(tmp_path / "config.yaml"), "--levels"])
    assert config_from_args(args).model == {"levels": [], "parts": 2}


def test_build_model_passes_the_model_mapping_through_whole():
    from keras_msreid.models.application_backbone import ApplicationBackbone
    from keras_msreid.models.backbone import MSReIDBackbone
    from keras_msreid.training.trainer import build_model

    peer = build_model(TrainConfig(image_size=(64, 32), model={"backbone": "MobileNetV2", "alpha": 0.35,
                                                               "embedding_dim": 32}), num_classes=5)
    assert isinstance(peer.backbone, ApplicationBackbone) and peer.pair_head is None
    assert peer.backbone.get_config()["alpha"] == 0.35 and peer.backbone.embedding_dim == 32
    msreid = build_model(TrainConfig(image_size=(64, 32), model={"levels": ["mid"], "widths": [8, 8, 16, 16],
                                                                 "use_stn": False}), num_classes=5)
    assert isinstance(msreid.backbone, MSReIDBackbone) and msreid.backbone.levels == ("mid",)
    assert msreid.pair_head.levels == ("mid",) and msreid.backbone.get_config()["widths"] == (8, 8, 16, 16)
    assert build_model(TrainConfig(image_size=(64, 32), model={"levels": []}), num_classes=5).pair_head is None


class _FirstStep(keras.callbacks.Callback):
    """Records the weights training starts from, and whether the int8 simulation is on."""

    def on_train_begin(self, logs=None):
        self.weights = [w.numpy() for w in self.model.weights]
        self.simulated = any("call" in vars(layer) for layer in self.model._flatten_layers())


def test_fine_tunes_a_saved_model_under_simulated_int8(tiny_dataset, tmp_path):
    import dataclasses

    from keras_msreid.datasets import build_dataset
    from keras_msreid.models.loading import load_model
    from keras_msreid.training.trainer import build_model, train
    from training_job import tiny_config

    config = tiny_config(str(tiny_dataset), str(tmp_path / "qat"))
    config.epochs, config.final_evaluation = 1, False
    source = build_model(config, build_dataset("folder", str(tiny_dataset), check_files=False).num_train_pids)
    source.build()
    for variable in source.weights:  # weights no fresh initialisation of the run could have
        variable.assign(variable + 0.125)
    source.save(tmp_path / "source.keras")
    config = dataclasses.replace(config, quantization_aware=True, initial_weights=str(tmp_path / "source.keras"))
    first = _FirstStep()
    model, _ = train(config, extra_callbacks=[first], verbose=0)
    assert first.simulated
    for want, got in zip(source.weights, first.weights):  # the classifier too: the same identities
        np.testing.assert_array_equal(got, want.numpy(), err_msg=want.path)
    assert not all(np.array_equal(w.numpy(), s.numpy()) for w, s in zip(model.weights, source.weights))
    # What is saved is a plain model: the simulation is gone, and nothing was added to it.
    assert not any("call" in vars(layer) for layer in model._flatten_layers())
    saved = load_model(tmp_path / "qat" / "model.keras")
    assert [w.shape for w in saved.weights] == [w.shape for w in source.weights]


def test_initial_weights_must_be_the_same_network_but_not_the_same_identities(tmp_path):
    from keras_msreid.errors import UserError
    from keras_msreid.models import MSReID
    from keras_msreid.models.loading import initialise_from
    from keras_msreid.training.trainer import build_model

    options = {"patch_size": [3, 2], "widths": [8, 16, 16, 32], "depths": [1, 1, 1], "embedding_dim": 16}
    source = MSReID.from_options(num_classes=6, image_size=(64, 32), **options)
    source.build()
    source.save(tmp_path / "source.keras")
    other_ids = build_model(TrainConfig(image_size=(64, 32), model=options), num_classes=9)
    other_ids.build()
    fresh_classifier = other_ids.classifier.get_weights()[0]
    initialise_from(other_ids, tmp_path / "source.keras")
    for want, got in zip(source.backbone.weights + source.pair_head.weights,
                         other_ids.backbone.weights + other_ids.pair_head.weights):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    np.testing.assert_array_equal(other_ids.classifier.get_weights()[0], fresh_classifier)

    wider = build_model(TrainConfig(image_size=(64, 32), model={**options, "embedding_dim": 32}), num_classes=6)
    wider.build()
    with pytest.raises(UserError, match=r"source.keras: its backbone is not this run's \(embedding_dim: 16 -> 32\)"):
        initialise_from(wider, tmp_path / "source.keras")
    with pytest.raises(UserError, match="no model file"):
        initialise_from(wider, tmp_path / "missing.keras")
