"""Mel spectrograms: ``mel128`` (the seeds' input) and ``musicnn96`` (the musicnn models' input)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import librosa
import numpy as np

from .base import FeatureSet


@dataclass(frozen=True)
class MelSpectrogram(FeatureSet):
    """A power mel spectrogram with a log compression.

    ``scale="db"`` gives ``10·log10(max(S, 1e-10))`` (absolute level, no per-track normalisation, so
    loudness survives); ``scale="log1p10000"`` gives ``log10(1 + 10000·S)``, musicnn's own input.

    Notes
    -----
    Always computed in float32: musicnn's extractor multiplies a float16 array, which numpy 2 keeps
    in float16, so loud bins overflow to inf.
    """

    kind: ClassVar[str] = "mel"
    n_fft: int = 2048
    n_mels: int = 128
    scale: Literal["db", "log1p10000"] = "db"
    pad_mode: Literal["constant", "reflect"] = "constant"

    @property
    def n_bins(self) -> int:
        return self.n_mels

    def compute(self, samples: np.ndarray, *, sr: int) -> np.ndarray:
        self._check_input(samples, sr)
        power = librosa.feature.melspectrogram(
            y=samples,
            sr=sr,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            n_mels=self.n_mels,
            pad_mode=self.pad_mode,
        )
        if self.scale == "db":
            return (10.0 * np.log10(np.maximum(power, 1e-10))).astype(np.float32)
        return np.log10(1.0 + 10000.0 * power, dtype=np.float32)


MEL128 = MelSpectrogram(name="mel128", version=1, sample_rate=22050, hop_length=512, n_fft=2048, n_mels=128)
# musicnn was trained on librosa 0.6 features: centred frames with reflect padding.
MUSICNN96 = MelSpectrogram(
    name="musicnn96",
    version=1,
    sample_rate=16000,
    hop_length=256,
    n_fft=512,
    n_mels=96,
    scale="log1p10000",
    pad_mode="reflect",
)
