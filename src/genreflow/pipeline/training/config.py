"""What decides a training run, the backbone ``genreflow train`` fits and the name it registers unless told.

Light on purpose (no numpy, no Keras): the CLI reads these defaults to show them in ``--help``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ParameterError

PATCH_HOP_RANGE = (0.1, 1.0)  # --patch-hop: from a tenth of a patch (ten times the patches) to non-overlapping
AUTO = "auto"  # --backbone auto: fit every candidate probe, keep the lowest cross-validated log loss
AUTO_CANDIDATES = ("musicnn-msd-linear", "musicnn-mtt-linear", "vgg-msd-linear", "vgg-mtt-linear",
                   "musicnn-vgg-msd-linear")  # fmt: skip
DEFAULT_ARCHITECTURE = AUTO
DEFAULT_MODEL_NAME = (
    "genre"  # what `train` registers and `score` and `nightly` read unless told: one name, many versions
)
PRODUCTION = "production"  # the registry pointer `models promote` writes: the version a night scores with
# Classification heads on a backbone's features: one softmax layer (the shape a linear probe fills),
# and seed 000's searched heads: one Dense 256; two Dense 256 with dropout 0.2; five Dense 256 → 16.
HEADS = ("softmax", "dense256", "dense256x2", "deep5")

# --augment keys → AugmentConfig fields, with the accepted range of each value
_AUGMENT_KEYS = {"masking": "masking", "gain": "gain_db", "noise": "noise", "zoom": "zoom", "channels": "channels"}
_AUGMENT_RANGES = {"masking": (0.0, 1.0), "gain_db": (0.0, 24.0), "noise": (0.0, 1.0), "zoom": (0.0, 0.5),
                   "channels": (0, 1)}  # fmt: skip


@dataclass(frozen=True)
class AugmentConfig:
    """How training patches are augmented (``--augment``; never validation, test or scoring patches).

    Attributes
    ----------
    masking : float
        Probability of one time and one frequency mask (SpecAugment) on a patch.
    gain_db : float
        A random gain within ± this many dB.
    noise : float
        Additive Gaussian noise, its standard deviation relative to the patch's own.
    zoom : float
        Seed 001's zoom: the patch covers (1 ± zoom) × 3 s, stretched back to the patch length.
    channels : bool
        Seed 002's channel split: draw the left, right or mid view where the store holds them.
    """

    masking: float = 0.5
    gain_db: float = 6.0
    noise: float = 0.05
    zoom: float = 0.1
    channels: bool = True

    def __post_init__(self) -> None:
        for name, (low, high) in _AUGMENT_RANGES.items():
            value = getattr(self, name)
            if not low <= value <= high:  # NaN fails too
                key = next(k for k, f in _AUGMENT_KEYS.items() if f == name)
                raise ParameterError(f"--augment {key}={value}: expected a value from {low:g} to {high:g}")

    def spec(self) -> str:
        """The ``--augment`` text of these settings."""
        return ",".join(f"{key}={float(getattr(self, name)):g}" for key, name in _AUGMENT_KEYS.items())


def parse_augment(text: str) -> AugmentConfig:
    """``"masking=1,noise=0.05"`` → :class:`AugmentConfig` (keys not named keep their defaults);
    ``"none"`` turns every augmentation off.

    Raises
    ------
    ParameterError
        An unknown key, a value that is not a number, or one out of its range.
    """
    if text.strip() == "none":
        return AugmentConfig(masking=0.0, gain_db=0.0, noise=0.0, zoom=0.0, channels=False)
    values: dict[str, float] = {}
    for item in text.split(","):
        key, _, value = item.strip().partition("=")
        if key not in _AUGMENT_KEYS or not value:
            raise ParameterError(f"--augment {item!r}: expected KEY=VALUE with KEY one of {', '.join(_AUGMENT_KEYS)}")
        try:
            values[_AUGMENT_KEYS[key]] = float(value)
        except ValueError:
            raise ParameterError(f"--augment {item!r}: {value!r} is not a number") from None
    if "channels" in values:
        if values["channels"] not in (0, 1):
            raise ParameterError(f"--augment channels={values['channels']:g}: expected 0 or 1")
        values["channels"] = bool(values["channels"])
    return AugmentConfig(**values)


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
    steps_per_epoch: int | None = None  # default: one pass over the training patches (tracks × patches per track)
    seed: int = 0
    weights: str | None = None  # ImageNet weights file for keras.applications backbones
    head: str = HEADS[0]
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    refit: bool = False  # gradient models: train again on train + valid for the epochs early stopping chose
    linear_c: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0)  # 1,706 features: room to regularise hard
    probe_folds: int = 5  # a probe's C (and auto's backbone) by K-fold cross-validation inside train + valid
    # A track's prediction (and a probe's features) is the mean over patches starting this fraction of
    # a patch apart: 1 reads the non-overlapping patches, 0.5 half-overlapping ones (as --full-track
    # scoring does). Evaluation, validation and scoring from the store all read the model's own value.
    patch_hop: float = 1.0

    def __post_init__(self) -> None:
        at_least = {"epochs": 1, "batch_size": 1, "fine_tune_epochs": 0, "fine_tune_layers": 0, "patience": 1,
                    "seed": 0, "probe_folds": 2}  # fmt: skip
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
        low, high = PATCH_HOP_RANGE
        if not low <= self.patch_hop <= high:  # NaN fails too
            raise ParameterError(
                f"patch-hop must be from {low:g} to {high:g} (a fraction of a patch), got {self.patch_hop}"
            )
        if self.head not in HEADS:
            raise ParameterError(f"unknown head {self.head!r}; known: {', '.join(HEADS)}")
        if not self.linear_c or min(self.linear_c) <= 0:
            raise ParameterError(f"the linear probe's C grid must hold positive values, got {self.linear_c}")
