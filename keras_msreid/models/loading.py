"""`load_model(path)`: open a `.keras` file of an `MSReID`, safely, or say in one line why not.

Keras reports a truncated, empty or missing file alike as "File not found"; this
checks the file first, so the message names what is really wrong. Loading always
uses `safe_mode=True`: a file that would need arbitrary code (a `Lambda` layer,
a pickled function) is refused, never executed.

Example:

>>> model = load_model("runs/market/model.keras")
>>> model.levels
('low', 'mid', 'high')
"""

import os
import zipfile

import keras

from keras_msreid.errors import UserError
from keras_msreid.models.msreid import MSReID


def load_model(path):
    """The `MSReID` saved at `path`; raises `UserError` for a file that is not one."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise UserError(f"no model file {path}")
    if os.path.isdir(path):
        raise UserError(f"{path} is a folder, not a .keras model file")
    if not os.access(path, os.R_OK):
        raise UserError(f"{path}: permission denied")
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path} is not a .keras model file (empty, truncated or of another format)")
    try:
        model = keras.saving.load_model(path, safe_mode=True)
    except (ValueError, TypeError, KeyError, OSError, zipfile.BadZipFile) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"{path} cannot be loaded as an MSReID model: {reason}") from error
    if not isinstance(model, MSReID):
        raise UserError(f"{path} holds a {type(model).__name__}, not an MSReID model of keras_msreid")
    return model
