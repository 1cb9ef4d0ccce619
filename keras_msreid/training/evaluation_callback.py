"""Periodic CMC / mAP evaluation during training, logged like any Keras metric."""

import logging

import keras

log = logging.getLogger(__name__)


class ReIDEvaluation(keras.callbacks.Callback):
    """Ranks `dataset.query` against `dataset.gallery` every `every` epochs.

    Adds `val_<ranking>_rank1`, `val_<ranking>_rank5` and `val_<ranking>_mAP` to the
    epoch logs (rankings: `embedding`, and for models with similarity levels also
    `csn` and `fusion`), so that `CSVLogger`, `TensorBoard` and `ModelCheckpoint`
    placed after it see them.

    Example:

    >>> model.fit(data, epochs=60, callbacks=[ReIDEvaluation(dataset, every=10)])
    """

    def __init__(self, dataset, every=10, protocol="market1501", batch_size=128):
        super().__init__()
        self.dataset = dataset
        self.every = int(every)
        self.protocol = protocol
        self.batch_size = batch_size
        self.last_results = None

    def on_epoch_end(self, epoch, logs=None):
        if self.every <= 0 or (epoch + 1) % self.every:
            return
        from keras_msreid.retrieval.evaluate import evaluate_model

        log.info("evaluating at epoch %d on %d queries x %d gallery images",
                 epoch + 1, len(self.dataset.query), len(self.dataset.gallery))
        self.last_results = evaluate_model(
            self.model, self.dataset, protocol=self.protocol, batch_size=self.batch_size
        )
        if logs is not None:
            for ranking, result in self.last_results.items():
                for metric in ("rank1", "rank5", "mAP"):
                    logs[f"val_{ranking}_{metric}"] = result[metric]
