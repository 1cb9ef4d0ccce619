"""Training configuration: one flat dataclass, loadable from YAML and CLI flags."""

import dataclasses
import pathlib

import yaml

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
    # Model.
    levels: tuple = ("low", "mid", "high")
    parts: int = 1
    patch_size: tuple = (5, 3)
    use_stn: bool = True
    embedding_dim: int = 128
    widths: tuple = (32, 64, 128, 256)
    depths: tuple = (2, 3, 3)
    # Optimisation.
    epochs: int = 60
    steps_per_epoch: int = 0  # 0: one PK pass over the training identities
    learning_rate: float = 1e-2  # AdamW peak, from scratch: 1e-3 barely moved CUHK01 in 8 epochs (docs/RESULTS.md)
    warmup_epochs: int = 2
    weight_decay: float = 5e-4
    loss_weights: dict = dataclasses.field(default_factory=dict)
    loss_options: dict = dataclasses.field(default_factory=dict)
    seed: int = 0
    # Evaluation during training (0 = only at the end) and its ranking.
    eval_every: int = 0
    final_evaluation: bool = True
    protocol: str = "market1501"
    # Run directory, checkpoints, resumption.
    out_dir: str = "runs/default"
    checkpoint_every_steps: int = 200
    # Scale-out.
    strategy: str = "default"  # "default", "mirrored", "multi_worker"
    mixed_precision: bool = False
    jit_compile: bool = False  # XLA: for GPUs; the CPU train step was 8x slower with it

    def __post_init__(self):
        for name in ("image_size", "levels", "patch_size", "widths", "depths"):
            setattr(self, name, tuple(getattr(self, name)))
        if self.strategy not in ("default", "mirrored", "multi_worker"):
            raise ValueError(f"strategy must be default, mirrored or multi_worker, got {self.strategy!r}")
        for name in ("epochs", "p", "k"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def to_dict(self):
        values = dataclasses.asdict(self)
        return {key: list(value) if isinstance(value, tuple) else value for key, value in values.items()}

    def save(self, path):
        atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load(cls, path, **overrides):
        """Reads a YAML file; unknown keys are an error naming them and the file."""
        path = pathlib.Path(path)
        values = yaml.safe_load(path.read_text()) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a mapping of TrainConfig fields")
        return cls.from_dict({**values, **overrides}, source=str(path))

    @classmethod
    def from_dict(cls, values, source="config"):
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{source}: unknown training options {unknown}; known: {sorted(known)}")
        return cls(**values)
