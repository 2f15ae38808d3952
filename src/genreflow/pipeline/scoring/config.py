"""What a scoring run does unless told: the model, the tracks, batches and the confidence threshold.

Light on purpose (no numpy, no Keras): the CLI reads these defaults to show them in ``--help``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ParameterError
from ..training.config import DEFAULT_MODEL_NAME, PRODUCTION

DEFAULT_MODEL = DEFAULT_MODEL_NAME  # its production version, else its newest
DEFAULT_NIGHTLY_MODELS = (f"{DEFAULT_MODEL}@{PRODUCTION}",)  # a night scores with the promoted version only
MODES = ("new", "all")  # which tracks: not yet scored by this version (or changed since), or every one
DEFAULT_THRESHOLD = 0.5  # tracks whose top probability is lower are counted as uncertain
# What a run writes per track: the model's probabilities (scores/), or its embedding (embeddings/)
OUTPUTS = ("probabilities", "embedding")


@dataclass(frozen=True)
class ScoreSpec:
    """How every chunk of a run is scored.

    ``hop_s`` is the full-track window hop (default half a patch); ``threads`` the CPU threads the
    model may use in each worker process (None: all cores); ``output`` what each track gets, one of
    :data:`OUTPUTS` (the mean over its windows either way).
    """

    full_track: bool = False
    hop_s: float | None = None
    batch_size: int = 64
    threads: int | None = None
    output: str = OUTPUTS[0]

    def __post_init__(self) -> None:
        if self.output not in OUTPUTS:
            raise ParameterError(f"output must be one of {OUTPUTS}, got {self.output!r}")
        if self.batch_size < 1:
            raise ParameterError(f"batch-size must be at least 1, got {self.batch_size}")
        if self.hop_s is not None and not self.hop_s > 0:
            raise ParameterError(f"hop-s must be greater than 0, got {self.hop_s}")
        if self.threads is not None and self.threads < 1:
            raise ParameterError(f"threads must be at least 1, got {self.threads}")
