"""ReIDEvaluation: the learning curve it writes, and how a resumed run continues it."""

import keras

from conftest import TINY_MODEL
from keras_msreid.data.pipeline import make_train_dataset
from keras_msreid.datasets import build_dataset
from keras_msreid.models import MSReID
from keras_msreid.synthetic import write_market1501
from keras_msreid.training.checkpoint import ResumableCheckpoint, load_state
from keras_msreid.training.evaluation_callback import ReIDEvaluation, read_curve


def _tiny_run(tmp_path):
    """A tiny synthetic dataset and a compiled tiny model."""
    write_market1501(tmp_path / "data", num_ids=8, num_cameras=2, seed=1)
    dataset = build_dataset("market1501", tmp_path / "data")
    keras.utils.set_random_seed(0)
    model = MSReID.from_options(num_classes=dataset.num_train_pids, **TINY_MODEL)
    model.compile(optimizer="adam")
    return dataset, model


def _fit(model, dataset, epochs, callbacks, initial_epoch=0):
    data = make_train_dataset(dataset.train, TINY_MODEL["image_size"], p=4, k=2, augment=None, seed=0)
    callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
    model.fit(data, steps_per_epoch=2, epochs=epochs, initial_epoch=initial_epoch, callbacks=callbacks, verbose=0)


def test_curve_rows_per_evaluation_and_resumed_cpu_clock(tmp_path):
    dataset, model = _tiny_run(tmp_path)
    curve = tmp_path / "evaluations.csv"

    first = ReIDEvaluation(dataset, every=2, protocol="market1501", curve_path=curve)
    _fit(model, dataset, 4, first)
    rows = read_curve(curve)
    assert [row["epoch"] for row in rows] == [2, 4]  # every second epoch only
    assert [row["step"] for row in rows] == [4, 8]
    assert {f"{ranking}_{metric}" for ranking in ("embedding", "csn", "fusion")
            for metric in ("rank1", "rank5", "mAP")} <= set(rows[0])
    assert 0 < rows[0]["training_cpu_seconds"] < rows[1]["training_cpu_seconds"]
    assert rows[1]["fusion_mAP"] == round(first.last_results["fusion"]["mAP"], 5)

    # A new process resuming the run goes on from the file's last row.
    resumed = ReIDEvaluation(dataset, every=2, protocol="market1501", curve_path=curve)
    _fit(model, dataset, 6, resumed, initial_epoch=4)
    rows = read_curve(curve)
    assert [row["epoch"] for row in rows] == [2, 4, 6]
    assert rows[2]["training_cpu_seconds"] > rows[1]["training_cpu_seconds"]
    assert curve.read_text().count("epoch,step") == 1  # one header


def test_a_checkpoint_records_the_training_cpu_and_a_resumed_run_goes_on_from_it(tmp_path):
    dataset, model = _tiny_run(tmp_path)
    curve = tmp_path / "evaluations.csv"
    evaluation = ReIDEvaluation(dataset, every=2, protocol="market1501", curve_path=curve)
    checkpoint = ResumableCheckpoint(tmp_path / "checkpoint", every_steps=0, clock=evaluation.training_cpu)
    _fit(model, dataset, 3, [checkpoint, evaluation])
    # The last checkpoint (epoch 3) comes after the curve's last row (epoch 2) and counts epoch 3's CPU.
    state = load_state(tmp_path / "checkpoint")
    last_row = read_curve(curve)[-1]
    assert (state["global_step"], last_row["epoch"]) == (6, 2)
    assert state["training_cpu_seconds"] > last_row["training_cpu_seconds"]

    # A new process resuming from that checkpoint goes on from its clock, not from the curve's last row.
    resumed = ReIDEvaluation(dataset, every=2, protocol="market1501", curve_path=curve,
                             resumed_cpu=state["training_cpu_seconds"])
    _fit(model, dataset, 4, resumed, initial_epoch=3)
    assert read_curve(curve)[-1]["training_cpu_seconds"] > state["training_cpu_seconds"]
