"""What decides a training run, the backbone ``genreflow train`` fits and the name it registers unless told.

Light on purpose (no numpy, no Keras): the CLI reads these defaults to show them in ``--help``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ParameterError

DEFAULT_ARCHITECTURE = "musicnn-msd-linear"
DEFAULT_MODEL_NAME = (
    "genre"  # what `train` registers and `score` and `nightly` read unless told: one name, many versions
)
PRODUCTION = "production"  # the registry pointer `models promote` writes: the version a night scores with


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run (recorded in the model card)."""

    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 1e-3
    fine_tune_epochs: int = 10  # seed 000: after the head, unfreeze the backbone's top layers ...
    fine_tune_layers: int = 2
    fine_tune_lr_factor: float = 0.1  # ... at this fraction of the learning rate
    patience: int = 5
    steps_per_epoch: int | None = None  # default: one pass over the training tracks
    seed: int = 0
    weights: str | None = None  # ImageNet weights file for keras.applications backbones
    linear_c: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0)  # 1,706 features: room to regularise hard

    def __post_init__(self) -> None:
        at_least = {"epochs": 1, "batch_size": 1, "fine_tune_epochs": 0, "fine_tune_layers": 0, "patience": 1,
                    "seed": 0}  # fmt: skip
        for name, low in at_least.items():
            if getattr(self, name) < low:
                raise ParameterError(f"{name.replace('_', '-')} must be at least {low}, got {getattr(self, name)}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ParameterError(f"steps-per-epoch must be at least 1, got {self.steps_per_epoch}")
        if not (self.learning_rate > 0 and 0 < self.fine_tune_lr_factor <= 1):
            raise ParameterError(
                f"learning rate must be > 0 and its fine-tune factor in (0, 1], got {self.learning_rate} "
                f"and {self.fine_tune_lr_factor}"
            )
        if not self.linear_c or min(self.linear_c) <= 0:
            raise ParameterError(f"the linear probe's C grid must hold positive values, got {self.linear_c}")
