"""`load_model(path)`: open a `.keras` file of an `MSReID`, safely, or say in one line why not.

Keras reports a truncated, empty or missing file alike as "File not found"; this
checks the file first, so the message names what is really wrong. Loading always
uses `safe_mode=True`: a file that would need arbitrary code (a `Lambda` layer,
a pickled function) is refused, never executed.

`initialise_from(model, path)` starts a model from a saved one's weights, for
fine-tuning.

Example:

>>> model = load_model("runs/market/model.keras")
>>> model.levels
('low', 'mid', 'high')
"""

import logging
import os
import zipfile

import keras

from keras_msreid.errors import UserError
from keras_msreid.models.msreid import MSReID

log = logging.getLogger(__name__)


def check_model_file(path):
    """`path` as a string; raises `UserError` unless it is a readable .keras (zip) file. Loads nothing."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise UserError(f"no model file {path}")
    if os.path.isdir(path):
        raise UserError(f"{path} is a folder, not a .keras model file")
    if not os.access(path, os.R_OK):
        raise UserError(f"{path}: permission denied")
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path} is not a .keras model file (empty, truncated or of another format)")
    return path


def load_model(path):
    """The `MSReID` saved at `path`; raises `UserError` for a file that is not one."""
    path = check_model_file(path)
    try:
        model = keras.saving.load_model(path, safe_mode=True)
    except (ValueError, TypeError, KeyError, OSError, zipfile.BadZipFile) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"{path} cannot be loaded as an MSReID model: {reason}") from error
    if not isinstance(model, MSReID):
        raise UserError(f"{path} holds a {type(model).__name__}, not an MSReID model of keras_msreid")
    return model


def initialise_from(model, path):
    """Copies the weights of the `MSReID` saved at `path` into the built `model`.

    Backbone and pair head must be the same network (one line names the options that
    differ); the identity classifier is copied when it has as many identities, and
    otherwise keeps its fresh initialisation (fine-tuning on other identities).
    """
    source = load_model(path)
    for part in ("backbone", "pair_head"):
        mine, theirs = getattr(model, part), getattr(source, part)
        if _shapes(mine) != _shapes(theirs):
            raise UserError(f"{path}: its {part} is not this run's ({_differences(theirs, mine)}): "
                            "give the model options it was trained with")
        if mine is not None:
            mine.set_weights(theirs.get_weights())
    if model.classifier is not None and _shapes(model.classifier) == _shapes(source.classifier):
        model.classifier.set_weights(source.classifier.get_weights())
    elif model.classifier is not None:
        log.info("%s: identity classifier not copied (%s identities, this run has %d): it starts afresh",
                 path, source.num_classes, model.num_classes)


def _shapes(part):
    return None if part is None else [tuple(variable.shape) for variable in part.weights]


def _differences(source, target):
    """The options of two parts that differ, as `name: source -> target`."""
    if source is None or target is None:
        return f"{'none' if source is None else 'one'} in the file, {'none' if target is None else 'one'} here"
    mine, theirs = target.get_config(), source.get_config()
    ignored = {"name", "trainable", "dtype"}
    changed = [f"{key}: {theirs.get(key)} -> {mine.get(key)}" for key in sorted(set(mine) | set(theirs))
               if key not in ignored and mine.get(key) != theirs.get(key)]
    return ", ".join(changed) or "other weights"
