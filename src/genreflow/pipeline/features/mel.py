"""Mel spectrograms: ``mel128`` (the seeds' input) and ``musicnn96`` (the musicnn models' input).

Computed with numpy and scipy's FFT, equal to ``librosa.feature.melspectrogram`` (Slaney mel scale
and area normalisation, periodic Hann window, centred frames) to float32 rounding. Doing it here
keeps librosa and its JIT warm-up out of the workers and takes half librosa's time per clip.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view

from .base import FeatureSet

FRAMES_PER_BLOCK = 512  # frames transformed at once: bounded memory for any clip length


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
        power = self.power(samples)
        if self.scale == "db":
            return 10.0 * np.log10(np.maximum(power, 1e-10), out=power)
        return np.log10(1.0 + 10000.0 * power, out=power)

    def power(self, samples: np.ndarray) -> np.ndarray:
        """Mel-band power of centred, Hann-windowed frames, float32 [shape=(n_mels, n_frames)]."""
        padded = np.pad(samples, self.n_fft // 2, mode=self.pad_mode)
        frames = sliding_window_view(padded, self.n_fft)[:: self.hop_length]
        window = _hann(self.n_fft)
        basis = mel_filterbank(self.sample_rate, self.n_fft, self.n_mels)
        out = np.empty((self.n_mels, frames.shape[0]), dtype=np.float32)
        for start in range(0, frames.shape[0], FRAMES_PER_BLOCK):
            spectrum = scipy.fft.rfft(frames[start : start + FRAMES_PER_BLOCK] * window, axis=-1)
            out[:, start : start + FRAMES_PER_BLOCK] = basis @ (spectrum.real**2 + spectrum.imag**2).T
        return out


@functools.lru_cache(maxsize=8)
def _hann(n_fft: int) -> np.ndarray:
    """The periodic Hann window (``scipy.signal.get_window("hann", n, fftbins=True)``)."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """The Slaney mel scale: linear below 1 kHz, logarithmic above (librosa's default, ``htk=False``)."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / _MEL_HZ_STEP
    logarithmic = _MEL_BREAK + np.log(np.maximum(hz, _BREAK_HZ) / _BREAK_HZ) / _MEL_LOG_STEP
    return np.where(hz >= _BREAK_HZ, logarithmic, linear)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= _MEL_BREAK, _BREAK_HZ * np.exp(_MEL_LOG_STEP * (mel - _MEL_BREAK)), _MEL_HZ_STEP * mel)


_MEL_HZ_STEP = 200.0 / 3  # Hz per mel below the break
_BREAK_HZ = 1000.0
_MEL_BREAK = _BREAK_HZ / _MEL_HZ_STEP
_MEL_LOG_STEP = np.log(6.4) / 27.0


@functools.lru_cache(maxsize=8)
def mel_filterbank(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Triangular filters from 0 Hz to Nyquist, each scaled to unit area (Slaney norm).

    Returns
    -------
    np.ndarray, float32 [shape=(n_mels, 1 + n_fft // 2)]
    """
    fft_hz = np.fft.rfftfreq(n_fft, 1.0 / sr)
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2.0), n_mels + 2))
    widths = np.diff(edges_hz)
    distance = edges_hz[:, None] - fft_hz[None, :]
    rising = -distance[:-2] / widths[:-1, None]
    falling = distance[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]
    return weights.astype(np.float32)


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
