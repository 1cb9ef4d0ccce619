"""Training configuration: one flat dataclass, loadable from YAML and CLI flags."""

import dataclasses
import importlib
import math
import pathlib

import yaml

from keras_msreid.errors import UserError
from keras_msreid.utils.atomic import atomic_write_text


@dataclasses.dataclass
class TrainConfig:
    """Everything `train()` needs; the YAML file and `msreid train` flags share these names.

    Example:

    >>> config = TrainConfig(dataset="market1501", root="data/Market-1501", epochs=60)
    >>> config.save("run/config.yaml")
    >>> TrainConfig.load("run/config.yaml") == config
    True
    """

    # Data.
    dataset: str = "market1501"
    root: str = ""
    dataset_options: dict = dataclasses.field(default_factory=dict)  # e.g. {"num_test_ids": 100, "split_seed": 0}
    check_files: bool = True
    image_size: tuple = (160, 64)
    p: int = 16
    k: int = 4
    augment: dict = dataclasses.field(default_factory=dict)  # AugmentConfig fields; {} = defaults, None = off
    cache_decoded: bool = False  # decode every training image once into memory (GPU hosts, small sets)
    # Model: `MSReID.from_options` options, passed through whole (image_size above is
    # the model's too). {} is the measured best, the high level alone; {"levels": ["low",
    # "mid", "high"]} is the paper's network, {"levels": []} an embedding-only model,
    # {"backbone": "MobileNetV2", "alpha": 0.35} the peer a user would pick instead.
    model: dict = dataclasses.field(default_factory=dict)
    # Optimisation.
    epochs: int = 0  # 0: default_epochs(), 160 or more; the run folder records the number used
    steps_per_epoch: int = 0  # 0: one PK pass over the training identities
    learning_rate: float = 1e-2  # AdamW peak, from scratch: 1e-3 barely moved CUHK01 in 8 epochs (docs/RESULTS.md)
    warmup_epochs: int = 2
    weight_decay: float = 5e-4
    loss_weights: dict = dataclasses.field(default_factory=dict)
    loss_options: dict = dataclasses.field(default_factory=dict)
    seed: int = 0
    # Fine-tuning: start from a saved model (its backbone and pair head; its identity
    # classifier when it has as many identities), and train under the int8 export's
    # rounding (quantization_aware.py) so that its int8 export agrees better with float.
    initial_weights: str = ""
    quantization_aware: bool = False
    # Evaluation during training (0 = only at the end) and its ranking.
    eval_every: int = 0
    final_evaluation: bool = True
    protocol: str | None = None  # None: the dataset's own (cuhk01 for CUHK01, market1501 for the others)
    # Run directory, checkpoints, resumption.
    out_dir: str = "runs/default"
    checkpoint_every_steps: int = 200
    # Scale-out.
    strategy: str = "default"  # "default", "mirrored", "multi_worker"
    mixed_precision: bool = False
    jit_compile: bool = False  # XLA: for GPUs; the CPU train step was 8x slower with it

    def __post_init__(self):
        for name, rule in _RULES.items():
            value = getattr(self, name)
            if isinstance(value, list):
                value = tuple(value)
                setattr(self, name, value)
            problem = rule(value)
            if problem:
                raise ConfigError(name, f"{problem}, got {value!r}")
        # YAML's form (lists, not tuples), so that a config read back equals the one saved.
        self.model = {key: list(value) if isinstance(value, tuple) else value for key, value in self.model.items()}
        _check_model(self.model, self.image_size)

    def to_dict(self):
        values = dataclasses.asdict(self)
        return {key: list(value) if isinstance(value, tuple) else value for key, value in values.items()}

    def save(self, path):
        atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load(cls, path, **overrides):
        """Reads a YAML file; unknown keys are an error naming them and the file."""
        path = pathlib.Path(path)
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            raise UserError(f"{path} is not a YAML file: {' '.join(str(error).split())}") from None
        if not isinstance(values, dict):
            raise UserError(f"{path}: expected a mapping of TrainConfig fields")
        return cls.from_dict({**values, **overrides}, source=str(path))

    @classmethod
    def from_dict(cls, values, source="config"):
        """A config from a mapping; a wrong key, type or range raises `UserError` naming `source` and the key."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            from keras_msreid.models import MSReID

            model_options = MSReID.option_names()
            misplaced = [key for key in unknown if key in model_options]
            verb = "is a model option" if len(misplaced) == 1 else "are model options"
            hint = f" ({', '.join(misplaced)} {verb}: set it under model:)" if misplaced else ""
            raise UserError(f"{source}: unknown training options {unknown}{hint}; known: {sorted(known)}")
        try:
            return cls(**values)
        except ConfigError as error:
            raise ConfigError(error.key, error.problem, source, error.option) from None


# The default schedule (docs/RESULTS.md): CUHK01's validation mAP plateaus from about
# epoch 120 of 160 with 771 training identities (48 steps an epoch, 7,680 steps in
# all). An epoch is one PK pass, so a smaller training set gets fewer steps from the
# same epochs; with 385 identities, the 486-identity protocol, 320 epochs (the same
# 7,680 steps) ranked better than 160.
DEFAULT_EPOCHS = 160
DEFAULT_MIN_STEPS = 7680


def default_epochs(steps_per_epoch):
    """The epochs a run trains when `epochs` is 0: 160, or as many as make 7,680 steps if more.

    >>> default_epochs(48), default_epochs(24), default_epochs(100)
    (160, 320, 160)
    """
    return max(DEFAULT_EPOCHS, math.ceil(DEFAULT_MIN_STEPS / steps_per_epoch))


class ConfigError(UserError):
    """A `TrainConfig` field with a wrong type or value: its `key`, what is wrong, and where it came from.

    For the `model` mapping, `option` names the model option at fault (None: the
    mapping as a whole), and `problem` is the model's own message.
    """

    def __init__(self, key, problem, source=None, option=None):
        text = f"model: {problem}" if key == "model" else f"{key} {problem}"
        super().__init__(f"{source}: {text}" if source else text)
        self.key = key
        self.problem = problem
        self.option = option


def _integer(low, note=""):
    def rule(value):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            return f"must be an integer >= {low}{note}"
        return None

    return rule


def _number(low, inclusive=True, note=""):
    def rule(value):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or value < low or (value == low and not inclusive):
            return f"must be a number {'>=' if inclusive else '>'} {low}{note}"
        return None

    return rule


def _flag(value):
    return None if isinstance(value, bool) else "must be true or false"


def _known(module, name):
    """The names of `module.name`, imported when a config is checked, not when this module is."""

    def names():
        return tuple(getattr(importlib.import_module(module), name))

    return names


def _text(choices=None, optional=False):
    """A non-empty string; with `choices` (the allowed names, or a function giving them), one of them.

    `optional`: None is allowed too.
    """

    def rule(value):
        if value is None and optional:
            return None
        allowed = choices() if callable(choices) else choices
        if not isinstance(value, str) or not value or (allowed and value not in allowed):
            if not allowed:
                return "must be a non-empty string"
            return f"must be {', '.join(allowed[:-1])} or {allowed[-1]}" if len(allowed) > 1 else f"must be {allowed[0]}"
        return None

    return rule


def _integers(count, low):
    def rule(value):
        if not isinstance(value, tuple) or len(value) != count or any(_integer(low)(v) for v in value):
            return f"must be {count} integers >= {low}"
        return None

    return rule


def _image_size(value):
    if _integers(2, 32)(value) or any(v % 16 for v in value):
        return "must be 2 integers (height, width), each >= 32 and divisible by 16 (the trunk's stride)"
    return None


def _check_model(model, image_size):
    """Checks the options as building the model would, so a bad one fails before any data is read."""
    from keras_msreid.models import MSReID
    from keras_msreid.models.options import ModelOptionError

    if "image_size" in model:
        raise ConfigError("model", "must not hold image_size: set it at the top level (it is the data's size too)")
    try:
        MSReID.check_options(image_size=image_size, **model)
    except ModelOptionError as error:
        raise ConfigError("model", str(error), option=error.option) from None
    except UserError as error:
        raise ConfigError("model", str(error)) from None


def _mapping(keys=None, values=None, optional=False):
    def rule(value):
        if value is None and optional:
            return None
        if not isinstance(value, dict):
            return "must be a mapping" + (" or null (off)" if optional else "")
        unknown = sorted(set(value) - set(keys())) if keys else []
        if unknown:
            return f"has unknown keys {unknown}; known: {sorted(keys())}"
        if values:
            bad = sorted(key for key, item in value.items() if values(item))
            if bad:
                return f"{bad[0]} {values(value[bad[0]])}"
        return None

    return rule


# One rule per field: the type and range a value must have, checked when a config
# is made, so a bad value fails before the run folder is touched (not after training).
_RULES = {
    "dataset": _text(_known("keras_msreid.datasets", "DATASETS")),
    "root": lambda value: None if isinstance(value, str) else "must be a folder path",
    "dataset_options": _mapping(),
    "check_files": _flag,
    "image_size": _image_size,
    "p": _integer(2, note=" (identities per batch: negatives need two)"),
    "k": _integer(2, note=" (images per identity: positives need two)"),
    "augment": _mapping(optional=True),
    "cache_decoded": _flag,
    "model": _mapping(),
    "epochs": _integer(0, note=f" (0: {DEFAULT_EPOCHS}, or more on a small training set)"),
    "steps_per_epoch": _integer(0, note=" (0: one PK pass over the training identities)"),
    "learning_rate": _number(0, inclusive=False),
    "warmup_epochs": _integer(0),
    "weight_decay": _number(0),
    "loss_weights": _mapping(_known("keras_msreid.models.msreid", "DEFAULT_LOSS_WEIGHTS"), _number(0)),
    "loss_options": _mapping(_known("keras_msreid.models.msreid", "DEFAULT_LOSS_OPTIONS"), _number(0)),
    "seed": _integer(0),
    "initial_weights": lambda value: None if isinstance(value, str) else "must be a .keras file path",
    "quantization_aware": _flag,
    "eval_every": _integer(0, note=" (0: only at the end)"),
    "final_evaluation": _flag,
    "protocol": _text(_known("keras_msreid.metrics.ranking", "PROTOCOLS"), optional=True),
    "out_dir": _text(),
    "checkpoint_every_steps": _integer(0, note=" (0: at epoch ends only)"),
    "strategy": _text(("default", "mirrored", "multi_worker")),
    "mixed_precision": _flag,
    "jit_compile": _flag,
}
