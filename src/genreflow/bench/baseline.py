"""The plain serial baseline benchmarks compare against: the seeds' per-file loop."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import librosa
import numpy as np


def serial_mel_baseline(paths: Sequence[Path], out_dir: Path) -> float:
    """``librosa.load(sr=22050)`` + ``melspectrogram`` + ``np.save`` per file; returns seconds taken."""
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for path in paths:
        y, sr = librosa.load(path, sr=22050)
        mel = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_fft=2048, hop_length=512, n_mels=128))
        np.save(out_dir / f"{path.stem}.npy", mel)
    return time.perf_counter() - started
