"""Step-level checkpoints that let a killed training resume exactly where it was."""

import json
import math
import pathlib

import keras
import numpy as np

from keras_msreid.errors import UserError
from keras_msreid.utils.atomic import atomic_path, atomic_write_text

STATE_FILE = "state.json"


def load_state(directory):
    """The last complete checkpoint's state `{"global_step", "weights"}` (and
    `"training_cpu_seconds"` where a clock was given), or None."""
    path = pathlib.Path(directory) / STATE_FILE
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text())
        weights = pathlib.Path(directory) / state["weights"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise UserError(f"{path} is damaged ({error}); it is written atomically, so something else changed it") from None
    if not weights.exists():
        raise UserError(f"{path} points at {weights}, which is missing")
    state["weights_path"] = str(weights)
    return state


class ResumableCheckpoint(keras.callbacks.Callback):
    """Saves weights and optimizer state every `every_steps` steps and at each epoch end.

    Each save writes `step-NNNNNNNN.weights.h5` through a temporary file, then
    atomically replaces `state.json`, which names it; only then is the previous
    file removed. A kill at any moment leaves a state that names a complete file.
    Non-finite losses are never saved. Resuming is `restore(model, directory)`
    followed by a data stream that starts at the restored step (see `train`).
    `clock`, a function giving the training CPU seconds so far
    (`ReIDEvaluation.training_cpu`), is saved with each checkpoint, so that a resumed
    run's learning curve counts the CPU spent up to the step it resumes from.

    Example:

    >>> callback = ResumableCheckpoint("run/checkpoint", every_steps=200)
    >>> model.fit(data, epochs=10, steps_per_epoch=100, callbacks=[callback])
    """

    def __init__(self, directory, every_steps=200, clock=None):
        super().__init__()
        self.directory = pathlib.Path(directory)
        self.every_steps = int(every_steps)
        self.clock = clock

    def on_train_batch_end(self, batch, logs=None):
        if self.every_steps and self._step() % self.every_steps == 0:
            self._save(logs)

    def on_epoch_end(self, epoch, logs=None):
        self._save(logs)

    def _step(self):
        return int(self.model.optimizer.iterations.numpy())

    def _save(self, logs):
        # A diverged step can leave finite logs (computed before the update) over NaN weights.
        if logs and not all(math.isfinite(float(v)) for k, v in logs.items() if k.endswith("loss")):
            return
        if not weights_are_finite(self.model):
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        step = self._step()
        name = f"step-{step:08d}.weights.h5"
        if (self.directory / name).exists():
            return
        with atomic_path(self.directory / name) as temporary:
            self.model.save_weights(temporary)
        state = {"global_step": step, "weights": name}
        if self.clock is not None:
            state["training_cpu_seconds"] = round(float(self.clock()), 2)
        atomic_write_text(self.directory / STATE_FILE, json.dumps(state))
        for old in self.directory.glob("step-*.weights.h5"):
            if old.name != name:
                old.unlink()


def weights_are_finite(model):
    """Whether every weight of `model` is finite (false after a step that diverged)."""
    return all(np.all(np.isfinite(keras.ops.convert_to_numpy(weight.value))) for weight in model.weights)


def restore(model, directory):
    """Loads the last checkpoint into a compiled model; returns its global step (0 if none).

    `MSReID.compile` builds the model and its optimizer, so every variable the
    checkpoint holds exists.
    """
    state = load_state(directory)
    if state is None:
        return 0
    try:
        model.load_weights(state["weights_path"])
    except (ValueError, KeyError, OSError) as error:
        reason = " ".join(str(error).split())[:300]
        raise UserError(f"checkpoint {state['weights_path']} does not fit this model ({reason}): "
                        f"resume with the run's own config.yaml, or give a new --out") from None
    return int(state["global_step"])
