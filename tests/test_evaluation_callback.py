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


def test_curve_rows_the_checkpoint_clock_and_both_ways_a_resumed_run_goes_on(tmp_path):
    # One tiny run, resumed twice: its tracing is most of the cost, so the three phases share it.
    dataset, model = _tiny_run(tmp_path)
    curve = tmp_path / "evaluations.csv"
    evaluation = ReIDEvaluation(dataset, every=2, protocol="market1501", curve_path=curve)
    checkpoint = ResumableCheckpoint(tmp_path / "checkpoint", every_steps=0, clock=evaluation.training_cpu)
    _fit(model, dataset, 3, [checkpoint, evaluation])
    rows = read_curve(curve)
    assert [(row["epoch"], row["step"]) for row in rows] == [(2, 4)]  # every second epoch only
    assert {f"{ranking}_{metric}" for ranking in ("embedding", "csn", "fusion")
            for metric in ("rank1", "rank5", "mAP")} <= set(rows[0])
    assert rows[0]["training_cpu_seconds"] > 0
    assert rows[0]["fusion_mAP"] == round(evaluation.last_results["fusion"]["mAP"], 5)
    # The last checkpoint (epoch 3) comes after the curve's last row (epoch 2) and counts epoch 3's CPU.
    state = load_state(tmp_path / "checkpoint")
    assert state["global_step"] == 6
    assert state["training_cpu_seconds"] > rows[0]["training_cpu_seconds"]

    # A new process resuming from a checkpoint goes on from its clock, not from the curve's last row
    # (the clock is set far ahead here, so that the two readings cannot coincide).
    clock = state["training_cpu_seconds"] + 1000.0
    resumed = ReIDEvaluation(dataset, every=2, protocol="market1501", curve_path=curve, resumed_cpu=clock)
    _fit(model, dataset, 4, resumed, initial_epoch=3)
    rows = read_curve(curve)
    assert [row["epoch"] for row in rows] == [2, 4]
    assert clock < rows[1]["training_cpu_seconds"] < clock + 1000.0

    # Without a clock (a checkpoint written before it was recorded) it goes on from the curve's last row.
    from_curve = ReIDEvaluation(dataset, every=2, protocol="market1501", curve_path=curve)
    _fit(model, dataset, 6, from_curve, initial_epoch=4)
    rows = read_curve(curve)
    assert [row["epoch"] for row in rows] == [2, 4, 6]
    assert rows[1]["training_cpu_seconds"] < rows[2]["training_cpu_seconds"] < rows[1]["training_cpu_seconds"] + 1000.0
    assert curve.read_text().count("epoch,step") == 1  # one header
