"""Periodic CMC / mAP evaluation during training: the learning curve of a run."""

import csv
import logging
import pathlib
import time

import keras

log = logging.getLogger(__name__)

METRICS = ("rank1", "rank5", "mAP")


class ReIDEvaluation(keras.callbacks.Callback):
    """Ranks `dataset.query` against `dataset.gallery` every `every` epochs.

    Adds `val_<ranking>_rank1`, `val_<ranking>_rank5` and `val_<ranking>_mAP` to the
    epoch logs (rankings: `embedding`, and for models with similarity levels also
    `csn` and `fusion`), so that `TensorBoard` and `ModelCheckpoint` placed after it
    see them. With `curve_path`, each evaluation is also appended as a row of that
    CSV file with the epoch, the optimizer step and the training CPU seconds so far
    (this process's CPU time, all threads, without the evaluations). A resumed run
    continues the clock from `resumed_cpu`, the training CPU seconds its checkpoint
    recorded (`training_cpu` is what `ResumableCheckpoint` saves), or else from the
    file's last row. `keras.callbacks.CSVLogger` cannot hold these columns: it fixes
    its columns at the first epoch, which is not evaluated.

    Example:

    >>> model.fit(data, epochs=60, callbacks=[ReIDEvaluation(dataset, every=10, curve_path="curve.csv")])
    """

    def __init__(self, dataset, every=10, protocol=None, batch_size=128, curve_path=None, resumed_cpu=None):
        super().__init__()
        self.resumed_cpu = resumed_cpu
        self.dataset = dataset
        self.every = int(every)
        self.protocol = protocol
        self.batch_size = batch_size
        self.curve_path = pathlib.Path(curve_path) if curve_path else None
        self.last_results = None
        self._clock_start = None
        self._evaluation_cpu = 0.0
        self._cpu_before = 0.0

    def on_train_begin(self, logs=None):
        self._start_clock()

    def _start_clock(self):
        # Once per run: `fit` may be called twice (the trainer finishes an interrupted epoch
        # first), and `evaluate` may come before it.
        if self._clock_start is None:
            self._clock_start = time.process_time()
            self._cpu_before = (_last_training_cpu(self.curve_path) if self.resumed_cpu is None
                                else float(self.resumed_cpu))

    def training_cpu(self):
        """Training CPU seconds of the run so far, evaluations left out."""
        if self._clock_start is None:
            return self._cpu_before
        return self._cpu_before + time.process_time() - self._clock_start - self._evaluation_cpu

    def evaluates_after(self, epoch):
        """Whether the run is evaluated at the end of `epoch` (counted from 1)."""
        return self.every > 0 and epoch % self.every == 0

    def on_epoch_end(self, epoch, logs=None):
        if self.evaluates_after(epoch + 1):
            self.evaluate(epoch + 1, logs)

    def evaluate(self, epoch, logs=None):
        """Evaluates the model now as the end of `epoch` (counted from 1), and appends the curve's row.

        `on_epoch_end` calls it every `every` epochs; the trainer calls it before `fit`
        when a run resumes at the end of an evaluation epoch whose evaluation a kill cut short.
        """
        from keras_msreid.retrieval.evaluate import evaluate_model

        self._start_clock()
        started = time.process_time()
        training_cpu = self.training_cpu()
        log.info("evaluating at epoch %d on %d queries x %d gallery images",
                 epoch, len(self.dataset.query), len(self.dataset.gallery))
        self.last_results = evaluate_model(
            self.model, self.dataset, protocol=self.protocol, batch_size=self.batch_size
        )
        self._evaluation_cpu += time.process_time() - started
        if logs is not None:
            for ranking, result in self.last_results.items():
                for metric in METRICS:
                    logs[f"val_{ranking}_{metric}"] = result[metric]
        if self.curve_path:
            row = {"epoch": epoch, "step": int(self.model.optimizer.iterations.numpy()),
                   "training_cpu_seconds": round(training_cpu, 2)}
            row.update({f"{ranking}_{metric}": round(float(result[metric]), 5)
                        for ranking, result in self.last_results.items() for metric in METRICS})
            _append_row(self.curve_path, row)


def read_curve(path):
    """The rows of a curve file as dicts of numbers, the last row of each epoch only (a resumed
    run may evaluate an epoch twice)."""
    with open(path, newline="") as handle:
        rows = {int(row["epoch"]): {key: float(value) for key, value in row.items()} for row in csv.DictReader(handle)}
    return [rows[epoch] for epoch in sorted(rows)]


def _last_training_cpu(path):
    if not path or not path.is_file() or path.stat().st_size == 0:
        return 0.0
    rows = read_curve(path)
    return rows[-1]["training_cpu_seconds"] if rows else 0.0


def _append_row(path, row):
    new = not path.is_file() or path.stat().st_size == 0
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)
