"""Direct use: the top labels (or the embedding) of one audio file, for a person checking a song."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .scorers import Scorer
from .windows import TrackAverager, audio_patches


def file_mean(path: Path, scorer: Scorer, *, hop_s: float | None = None) -> tuple[np.ndarray, int]:
    """The scorer's mean output over the whole of one file (overlapping windows), and the windows.

    Raises
    ------
    DecodeError
        The file cannot be decoded.
    """
    info = scorer.info
    averager = TrackAverager(scorer.predict)
    with open(path, "rb") as source:
        for patches in audio_patches(source, info.inputs, info.patch_frames, hop_s=hop_s):
            averager.add(path, patches)
    return averager.means()[path], averager.counts[path]


def predict_file(path: Path, scorer: Scorer, *, top: int = 3, hop_s: float | None = None) -> dict[str, Any]:
    """The ``top`` labels of one file over its whole length (mean of overlapping windows).

    Raises
    ------
    DecodeError
        The file cannot be decoded.
    """
    info = scorer.info
    probabilities, n_windows = file_mean(path, scorer, hop_s=hop_s)
    best = np.argsort(-probabilities, kind="stable")[:top]
    return {
        "file": str(path),
        "model": str(info.ref),
        "n_windows": n_windows,
        "top": [{"label": info.labels[i], "probability": round(float(probabilities[i]), 4)} for i in best],
    }
