"""Power spectrograms: ``mel128`` (the seeds' input), ``musicnn96`` (the musicnn models' input) and
``stft512`` (the linear-frequency spectrogram seed 002 compared mel against).

Computed with numpy and scipy's FFT, equal to ``librosa.feature.melspectrogram`` (Slaney mel scale
and area normalisation, periodic Hann window, centred frames) to float32 rounding. Doing it here
keeps librosa and its JIT warm-up out of the workers and takes half librosa's time per clip.
"""

from __future__ import annotations

import functools
from abc import abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..audio import fit_length
from .base import FeatureSet

if TYPE_CHECKING:
    import scipy.sparse

BLOCK_BYTES = 512 * 2**10  # frames transformed at once: 64 of 2,048 samples, in the CPU cache (measured)


@dataclass(frozen=True)
class PowerSpectrogram(FeatureSet):
    """Log-compressed power of centred, Hann-windowed STFT frames, projected onto the set's bins.

    ``scale="db"`` gives ``10·log10(max(S, 1e-10))`` (absolute level, no per-track normalisation, so
    loudness survives); ``scale="log1p10000"`` gives ``log10(1 + 10000·S)``, musicnn's own input.

    Notes
    -----
    Always computed in float32: musicnn's extractor multiplies a float16 array, which numpy 2 keeps
    in float16, so loud bins overflow to inf.
    """

    n_fft: int = 2048
    scale: Literal["db", "log1p10000"] = "db"
    pad_mode: Literal["constant", "reflect"] = "constant"

    def compute(self, samples: np.ndarray, *, sr: int) -> np.ndarray:
        self._check_input(samples, sr)
        return self._compress(self.power(samples))

    def compute_window(self, samples: np.ndarray, *, sr: int, size: int) -> np.ndarray:
        """Only the frames that see audio are transformed: the others see zeros only, so their power
        is exactly 0 (as computing them would give)."""
        self._check_input(samples, sr)
        audio = min(samples.shape[0], size)
        return self._compress(self.power(fit_length(samples, size=size), audio_samples=audio))

    def _compress(self, power: np.ndarray) -> np.ndarray:
        if self.scale == "db":
            return 10.0 * np.log10(np.maximum(power, 1e-10), out=power)
        return np.log10(1.0 + 10000.0 * power, out=power)

    @abstractmethod
    def _project(self, power: np.ndarray) -> np.ndarray:
        """The set's bins from a block of FFT-bin power [shape=(frames, 1 + n_fft // 2)], bins first."""

    def power(self, samples: np.ndarray, *, audio_samples: int | None = None) -> np.ndarray:
        """Power in the set's bins, float32 [shape=(n_bins, n_frames)].

        ``audio_samples``: the samples after the first ``audio_samples`` are zero (padding); frames
        holding none of the audio are set to 0 without being transformed.

        The power goes straight into the FFT's output buffer, and frames are transformed in blocks
        that stay in the CPU cache.
        """
        import scipy.fft  # here, not at import: a run with nothing to compute never loads scipy

        n_fft, hop = self.n_fft, self.hop_length
        padded = np.pad(samples, n_fft // 2, mode=self.pad_mode)
        frames = sliding_window_view(padded, n_fft)[::hop]
        n_frames = frames.shape[0]
        live = n_frames if audio_samples is None else _frames_with_audio(audio_samples, samples.shape[0], n_fft, hop)
        window = _hann(n_fft)
        out = np.zeros((self.n_bins, n_frames), dtype=np.float32)
        block = max(16, BLOCK_BYTES // (4 * n_fft))
        windowed = np.empty((block, n_fft), dtype=np.float32)
        for start in range(0, live, block):
            stop = min(start + block, live)
            chunk = np.multiply(frames[start:stop], window, out=windowed[: stop - start])
            parts = scipy.fft.rfft(chunk, axis=-1, overwrite_x=True).view(np.float32)  # real, imaginary pairs
            np.square(parts, out=parts)
            out[:, start:stop] = self._project(parts[:, 0::2] + parts[:, 1::2])
        return out


@dataclass(frozen=True)
class MelSpectrogram(PowerSpectrogram):
    """A power mel spectrogram with a log compression.

    The filterbank product is sparse: each mel band spans a few FFT bins (2,018 of mel128's 131,200
    weights are non-zero).
    """

    kind: ClassVar[str] = "mel"
    n_mels: int = 128

    @property
    def n_bins(self) -> int:
        return self.n_mels

    def _project(self, power: np.ndarray) -> np.ndarray:
        return _sparse_filterbank(self.sample_rate, self.n_fft, self.n_mels) @ power.T


@dataclass(frozen=True)
class LinearSpectrogram(PowerSpectrogram):
    """The log power of the STFT itself (seed 002's "raw" spectrogram), its lowest ``max_bins`` FFT bins.

    On mel128's frame grid, so the same networks read either; ``stft512`` keeps the bins up to
    512 · 22,050 / 2,048 ≈ 5.5 kHz (4x mel128's bytes; the full 1,025 bins would be 8x).
    """

    kind: ClassVar[str] = "stft"
    max_bins: int = 512

    @property
    def n_bins(self) -> int:
        return self.max_bins

    def _project(self, power: np.ndarray) -> np.ndarray:
        return power[:, : self.max_bins].T


def _frames_with_audio(audio_samples: int, n_samples: int, n_fft: int, hop: int) -> int:
    """How many leading centred frames hold any of the first ``audio_samples`` samples, or all frames
    when the audio reaches the last ``n_fft`` samples (reflect padding mirrors it into the end)."""
    n_frames = 1 + n_samples // hop
    if audio_samples + n_fft >= n_samples:
        return n_frames
    return min(n_frames, (audio_samples + n_fft // 2 - 1) // hop + 1)


@functools.lru_cache(maxsize=8)
def _sparse_filterbank(sr: int, n_fft: int, n_mels: int) -> scipy.sparse.csr_array:
    import scipy.sparse

    return scipy.sparse.csr_array(mel_filterbank(sr, n_fft, n_mels))


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


STFT512 = LinearSpectrogram(name="stft512", version=1, sample_rate=22050, hop_length=512, n_fft=2048, max_bins=512)
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
