"""`train(config)`: the whole training job the `msreid train` command runs."""

import json
import logging
import pathlib

import keras
import tensorflow as tf

from keras_msreid.data.augment import AugmentConfig
from keras_msreid.data.pipeline import make_train_dataset, steps_per_epoch
from keras_msreid.datasets import build_dataset
from keras_msreid.models import MSReID
from keras_msreid.training.checkpoint import ResumableCheckpoint, restore
from keras_msreid.training.evaluation_callback import ReIDEvaluation
from keras_msreid.utils.atomic import atomic_path, atomic_write_text

log = logging.getLogger(__name__)


def make_strategy(name):
    """The `tf.distribute` strategy a config names (`default`: the current one)."""
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def build_model(config, num_classes):
    return MSReID(
        image_size=config.image_size,
        levels=config.levels,
        parts=config.parts,
        patch_size=config.patch_size,
        use_stn=config.use_stn,
        embedding_dim=config.embedding_dim,
        widths=config.widths,
        depths=config.depths,
        num_classes=num_classes,
    )


def compile_model(model, config, steps):
    """AdamW with linear warm-up then cosine decay over the whole run (by optimizer step)."""
    total = config.epochs * steps
    warmup = min(config.warmup_epochs * steps, total - 1)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.learning_rate * 0.1 if warmup else config.learning_rate,
        decay_steps=max(total - warmup, 1),
        alpha=0.01,
        warmup_target=config.learning_rate if warmup else None,
        warmup_steps=warmup,
    )
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay)
    model.compile(
        optimizer=optimizer,
        loss_weights=config.loss_weights,
        jit_compile=config.jit_compile,
        **config.loss_options,
    )


def train(config, extra_callbacks=(), verbose="auto"):
    """Trains (or resumes) the run in `config.out_dir`; returns `(model, final_metrics)`.

    The run directory holds `config.yaml`, `checkpoint/` (resumption state),
    `history.csv`, `logs/` (TensorBoard), `model.keras` and `metrics.json`. Run the
    same command again after a kill and training continues from the last
    checkpoint with the same data order, so the result is the same as without the kill.
    """
    run = pathlib.Path(config.out_dir)
    run.mkdir(parents=True, exist_ok=True)
    config.save(run / "config.yaml")
    keras.utils.set_random_seed(config.seed)
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")

    log.info("loading %s from %s", config.dataset, config.root)
    dataset = build_dataset(config.dataset, config.root, check_files=config.check_files, **config.dataset_options)
    log.info("\n%s", dataset.summary())
    steps = config.steps_per_epoch or steps_per_epoch(dataset.train, config.p, config.k)

    strategy = make_strategy(config.strategy)
    with strategy.scope():
        model = build_model(config, dataset.num_train_pids)
        model.build()
        compile_model(model, config, steps)
        start = restore(model, run / "checkpoint")
    if start:
        log.info("resuming from step %d (epoch %d)", start, start // steps + 1)

    callbacks = [
        keras.callbacks.TerminateOnNaN(),
        ResumableCheckpoint(run / "checkpoint", config.checkpoint_every_steps),
    ]
    if config.eval_every:
        callbacks.append(ReIDEvaluation(dataset, config.eval_every, config.protocol))
    callbacks += [
        keras.callbacks.CSVLogger(str(run / "history.csv"), append=True),
        keras.callbacks.TensorBoard(str(run / "logs"), update_freq="epoch"),
        *extra_callbacks,
    ]

    def stream(first_step):
        return make_train_dataset(
            dataset.train,
            config.image_size,
            config.p,
            config.k,
            augment=AugmentConfig.from_dict(config.augment) if config.augment is not None else None,
            seed=config.seed,
            start_batch=first_step,
            deterministic=True,
            cache_decoded=config.cache_decoded,
        )

    epoch, offset = divmod(start, steps)
    if offset:  # finish the interrupted epoch first, so epochs keep their boundaries
        model.fit(stream(start), initial_epoch=epoch, epochs=epoch + 1,
                  steps_per_epoch=steps - offset, callbacks=callbacks, verbose=verbose)
        epoch += 1
    if epoch < config.epochs and not model.stop_training:
        model.fit(stream(epoch * steps), initial_epoch=epoch, epochs=config.epochs,
                  steps_per_epoch=steps, callbacks=callbacks, verbose=verbose)
    with atomic_path(run / "model.keras") as temporary:
        model.save(temporary)

    metrics = {}
    if config.final_evaluation and dataset.query and dataset.gallery:
        from keras_msreid.retrieval.evaluate import evaluate_model

        log.info("final evaluation: %d queries x %d gallery images", len(dataset.query), len(dataset.gallery))
        metrics = evaluate_model(model, dataset, protocol=config.protocol, progress=True)
        atomic_write_text(run / "metrics.json", json.dumps(metrics, indent=2))
    return model, metrics
