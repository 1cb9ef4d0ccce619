"""`train(config)`: the whole training job the `msreid train` command runs."""

import contextlib
import dataclasses
import json
import logging
import pathlib
import tempfile

import keras
import tensorflow as tf

from keras_msreid.data.augment import AugmentConfig
from keras_msreid.data.pipeline import make_train_dataset, steps_per_epoch
from keras_msreid.datasets import build_dataset
from keras_msreid.errors import UserError
from keras_msreid.models import MSReID
from keras_msreid.models.loading import check_model_file, initialise_from
from keras_msreid.models.msreid import DEFAULT_LOSS_OPTIONS, DEFAULT_LOSS_WEIGHTS
from keras_msreid.training.checkpoint import ResumableCheckpoint, load_state, restore, weights_are_finite
from keras_msreid.training.config import TrainConfig, default_epochs
from keras_msreid.training.evaluation_callback import ReIDEvaluation, read_curve
from keras_msreid.training.quantization_aware import simulated_int8
from keras_msreid.utils.atomic import atomic_path, atomic_write_text

log = logging.getLogger(__name__)

# Options a resumed run may change: they alter neither the model, nor the data
# order, nor the optimizer's state (a lower learning rate is the cure for a
# diverged run; more epochs continue a finished one).
RESUMABLE_CHANGES = frozenset({
    "root", "out_dir", "epochs", "learning_rate", "eval_every", "final_evaluation", "protocol",
    "checkpoint_every_steps", "check_files", "cache_decoded", "strategy", "jit_compile",
})
# Options a run folder records resolved, defaults included: a later release that
# changes a default (session 18 dropped the ranking loss) must not change a run
# resumed from its folder, and refuses it instead.
RESOLVED_DEFAULTS = {"loss_weights": DEFAULT_LOSS_WEIGHTS, "loss_options": DEFAULT_LOSS_OPTIONS}


class _MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """`MultiWorkerMirroredStrategy` with a `reduce` that Keras 3's `fit` can call.

    Keras 3's `fit` misuses `reduce` under this strategy in two ways
    (keras-team/keras#20585); both stopped the first step:
    - it first reduces a whole (images, labels) batch to build the model, but this
      strategy reduces one value, not a tuple ("Attempt to convert a value
      (PerReplica...)"): reduce each part in turn;
    - it averages each step's scalar logs with `axis=0` ("Invalid reduction dimension
      0 for input with 0 dimensions"): average a scalar over the replicas
      (axis=None), as Keras does under MirroredStrategy.
    Every worker runs the same collectives in the same order.
    """

    def reduce(self, reduce_op, value, axis):
        def one(part):
            local = part.values[0] if isinstance(part, tf.distribute.DistributedValues) else part
            return super(_MultiWorkerMirroredStrategy, self).reduce(
                reduce_op, part, None if tf.convert_to_tensor(local).shape.rank == 0 else axis)

        return tf.nest.map_structure(one, value)


def make_strategy(name):
    """The `tf.distribute` strategy a config names (`default`: the current one)."""
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return _MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy):
    """Whether this process writes the run folder: always, except on the non-chief workers of a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
    if not cluster:
        return True
    if resolver.task_type == "chief":
        return True
    return resolver.task_type == "worker" and int(resolver.task_id) == 0 and "chief" not in cluster


def check_run_folder(config):
    """Refuses an `out_dir` that `config` cannot resume or start in; changes nothing on disk.

    An empty or missing folder starts a run. A folder with a `config.yaml` resumes
    only when the options there match `config` (apart from `RESUMABLE_CHANGES`);
    a non-empty folder without one is not a run folder and is never written into.
    Returns the run's saved `TrainConfig`, or None for a new run.
    """
    run = pathlib.Path(config.out_dir)
    if run.exists() and not run.is_dir():
        raise UserError(f"--out {run} is a file, not a run folder")
    if not run.is_dir() or not any(run.iterdir()):
        return None
    saved_path = run / "config.yaml"
    if not saved_path.is_file():
        raise UserError(f"--out {run} is not empty and has no config.yaml, so it is not a run folder of "
                        "msreid train: give a new or empty folder")
    saved = TrainConfig.load(saved_path)
    changed = _differences(saved, config)
    if changed:
        details = "; ".join(f"{name} {there} there, {here} here" for name, there, here in changed)
        raise UserError(f"--out {run} holds a run with other options ({details}); resume it with "
                        f"`msreid train --config {saved_path}`, or give a new --out")
    return saved


def _differences(saved, config):
    """(name, saved value, new value) of each option a resumed run may not change, as text; mappings key by key."""
    def shown(mapping, key):
        return repr(mapping[key]) if key in mapping else "unset"

    changed = []
    for field in dataclasses.fields(TrainConfig):
        name, there, here = field.name, getattr(saved, field.name), getattr(config, field.name)
        if name in RESOLVED_DEFAULTS:
            there, here = {**RESOLVED_DEFAULTS[name], **there}, {**RESOLVED_DEFAULTS[name], **here}
        if name in RESUMABLE_CHANGES or there == here:
            continue
        if name in ("model", *RESOLVED_DEFAULTS):
            changed += [(f"{name}.{key}", shown(there, key), shown(here, key))
                        for key in sorted(set(there) | set(here)) if there.get(key) != here.get(key)]
        else:
            changed.append((name, repr(there), repr(here)))
    return changed


def build_model(config, num_classes):
    return MSReID.from_options(num_classes=num_classes, image_size=config.image_size, **config.model)


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
    saved = check_run_folder(config)
    resumed = load_state(run / "checkpoint")  # the checkpoint's state, None for a new run
    if config.initial_weights and resumed is None:
        check_model_file(config.initial_weights)  # before the dataset is read, which can take minutes
    keras.utils.set_random_seed(config.seed)
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")

    log.info("loading %s from %s", config.dataset, config.root)
    dataset = build_dataset(config.dataset, config.root, check_files=config.check_files, **config.dataset_options)
    log.info("\n%s", dataset.summary())
    # Counted even when the config gives the steps: it refuses P x K batches the identities
    # cannot fill now, before the run folder is written, not at the first batch.
    pk_steps = steps_per_epoch(dataset.train, config.p, config.k)
    steps = config.steps_per_epoch or pk_steps
    if not config.epochs:
        # A resumed run keeps the number its folder recorded, whatever a later release's default;
        # a folder whose config.yaml was edited to 0 means the default, as everywhere else.
        epochs = (saved.epochs if saved else 0) or default_epochs(steps)
        config = dataclasses.replace(config, epochs=epochs)
        log.info("training %d epochs of %d steps (the default for this training set)", epochs, steps)

    strategy = make_strategy(config.strategy)
    chief = is_chief(strategy)
    with strategy.scope():
        model = build_model(config, dataset.num_train_pids)
        compile_model(model, config, steps)  # builds the model and its optimizer
        start = restore(model, run / "checkpoint")
        if not start and config.initial_weights:
            initialise_from(model, config.initial_weights)
    if start:
        log.info("resuming from step %d (epoch %d)", start, start // steps + 1)
    # Everything that can refuse the run has run: only now is the folder written.
    if chief:
        dataclasses.replace(config, loss_weights=dict(model.loss_weights),
                            loss_options=dict(model.loss_options)).save(run / "config.yaml")

    with contextlib.ExitStack() as stack:
        # A worker that is not the chief logs to a private folder that vanishes with it.
        logs = run if chief else pathlib.Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="msreid_worker_")))
        callbacks = _callbacks(config, dataset, run, logs, chief, resumed) + list(extra_callbacks)
        if config.quantization_aware:
            # Evaluations during training see the simulated int8 model too; model.keras is the plain one.
            stack.enter_context(simulated_int8(model))
        _evaluate_a_skipped_epoch(model, run, start, steps, callbacks)
        _fit(model, config, dataset, steps, start, callbacks, verbose)
    _refuse_divergence(model, run)
    if not chief:
        return model, {}
    return model, _finish(model, config, dataset, run, finished=start >= config.epochs * steps)


def _callbacks(config, dataset, run, logs, chief, resumed):
    """Checkpoints (the chief's), evaluations, the CSV log and TensorBoard, in the order they must run.

    `resumed`: the state of the checkpoint the run resumes from (None for a new run);
    the learning curve's CPU clock goes on from what it recorded.
    """
    callbacks = [keras.callbacks.TerminateOnNaN()]
    evaluation = None
    if config.eval_every:
        evaluation = ReIDEvaluation(dataset, config.eval_every, config.protocol, curve_path=logs / "evaluations.csv",
                                    resumed_cpu=(resumed or {}).get("training_cpu_seconds"))
    if chief:
        callbacks.append(ResumableCheckpoint(run / "checkpoint", config.checkpoint_every_steps,
                                             clock=evaluation.training_cpu if evaluation is not None else None))
    if evaluation is not None:
        callbacks.append(evaluation)
    return callbacks + [
        keras.callbacks.CSVLogger(str(logs / "history.csv"), append=True),
        keras.callbacks.TensorBoard(str(logs / "logs"), update_freq="epoch"),
    ]


def _evaluate_a_skipped_epoch(model, run, start, steps, callbacks):
    """Evaluates the epoch a run resumes at the end of, if it is an evaluation epoch the curve lacks.

    An epoch's checkpoint is written before its evaluation: a run killed during the
    evaluation resumes after it, and its learning curve would miss that row for good.
    The decision reads the chief's curve in the run folder, so that under a multi-worker
    strategy every worker evaluates (a collective) or none does.
    """
    epoch, offset = divmod(start, steps)
    evaluation = next((callback for callback in callbacks if isinstance(callback, ReIDEvaluation)), None)
    if offset or not epoch or evaluation is None or not evaluation.evaluates_after(epoch):
        return
    curve = run / "evaluations.csv"
    if curve.is_file() and any(row["epoch"] == epoch for row in read_curve(curve)):
        return
    evaluation.set_model(model)
    evaluation.evaluate(epoch)


def _refuse_divergence(model, run):
    """A model with a NaN or inf weight is never saved: one line says which checkpoint to resume from."""
    if not weights_are_finite(model):
        state = load_state(run / "checkpoint")
        kept = " (the previous one is kept)" if (run / "model.keras").exists() else ""
        last = f"the last finite checkpoint is step {state['global_step']}" if state else "no checkpoint was written"
        raise UserError(f"training diverged (a loss became NaN or inf at step "
                        f"{int(model.optimizer.iterations.numpy())}): {run / 'model.keras'} was not written{kept}; "
                        f"{last}: resume with a lower --learning-rate")


def _finish(model, config, dataset, run, finished):
    """The chief's end of a run: save `model.keras` (unless a finished run's is there), evaluate; the metrics."""
    if finished and (run / "model.keras").exists():
        # A finished run run again: its model holds these weights. Saving would change the
        # file's bytes (Keras stamps the date), and with them the export's fingerprint that
        # the edge demo's gallery is keyed to.
        log.info("the run was already finished: %s kept", run / "model.keras")
    else:
        with atomic_path(run / "model.keras") as temporary:
            model.save(temporary)
    metrics = {}
    if config.final_evaluation and dataset.query and dataset.gallery:
        from keras_msreid.retrieval.evaluate import evaluate_model

        log.info("final evaluation: %d queries x %d gallery images", len(dataset.query), len(dataset.gallery))
        metrics = evaluate_model(model, dataset, protocol=config.protocol, progress=True)
        atomic_write_text(run / "metrics.json", json.dumps(metrics, indent=2))
    return metrics


def _fit(model, config, dataset, steps, start, callbacks, verbose):
    """Fits from global step `start` to the last epoch, finishing an interrupted epoch first."""

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
