"""Decoding: any supported file to a float32 clip window, mixed to the channel views asked for.

soundfile (libsndfile: WAV, AU, FLAC, OGG, MP3, AIFF, ...) reads first and seeks straight to the
window, so an hour-long file costs no more memory than a 30-s one. Where libsndfile cannot read the
container (M4A/AAC, Opus, WMA), PyAV decodes it when installed (``genreflow[decoders]``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr

from .errors import DecodeError, ParameterError
from .ingest_config import DEFAULT_MIN_DURATION_S, DEFAULT_WINDOW_S

CHANNEL_VIEWS = ("mid", "left", "right")
AUDIO_EXTENSIONS = frozenset(
    {
        ".wav",
        ".wave",
        ".au",
        ".snd",
        ".mp3",
        ".flac",
        ".ogg",
        ".oga",
        ".opus",
        ".aif",
        ".aiff",
        ".m4a",
        ".aac",
        ".wma",
        ".caf",
        ".w64",
    }
)
# libsndfile notes "data : <declared> (should be <present>)" when a RIFF/WAV data chunk is cut short.
_TRUNCATED_WAV = re.compile(r"^data\s*:\s*\d+\s*\(should be", re.MULTILINE)
SILENCE_PEAK = 1e-4  # -80 dBFS: below this the whole window carries no usable signal


@dataclass(frozen=True)
class ClipWindow:
    """Which part of a track is stored: the centred ``seconds``, zero-padded when shorter.

    Tracks shorter than ``min_seconds`` are rejected rather than stored as mostly padding.
    """

    seconds: float = DEFAULT_WINDOW_S
    min_seconds: float = DEFAULT_MIN_DURATION_S

    def __post_init__(self) -> None:
        if not (self.seconds > 0 and 0 <= self.min_seconds <= self.seconds):
            raise ParameterError(
                f"clip window needs 0 <= min_seconds <= seconds and seconds > 0, got "
                f"seconds={self.seconds}, min_seconds={self.min_seconds}"
            )


@dataclass(frozen=True)
class DecodedClip:
    """The window of one file, before resampling.

    Attributes
    ----------
    samples : np.ndarray, float32 [shape=(channels, n)]
    sample_rate : int
        The file's own rate.
    duration_s : float
        Length of the whole file.
    window_start_s : float
        Where the window starts in the file.
    """

    samples: np.ndarray
    sample_rate: int
    duration_s: float
    window_start_s: float

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def valid_s(self) -> float:
        """Seconds of real audio in the window (the rest is padding)."""
        return self.samples.shape[1] / self.sample_rate

    def view(self, name: str) -> np.ndarray:
        """One mono signal: ``mid`` (mean of all channels), ``left`` or ``right`` (first/second channel).

        A mono file gives the same signal for every view.
        """
        if name == "mid":
            return self.samples.mean(axis=0) if self.channels > 1 else self.samples[0]
        if name == "left":
            return self.samples[0]
        if name == "right":
            return self.samples[min(1, self.channels - 1)]
        raise ParameterError(f"unknown channel view {name!r}; expected one of {CHANNEL_VIEWS}")


def decode_clip(source: str | BinaryIO, *, window: ClipWindow) -> DecodedClip:
    """Decode the centred window of an audio file.

    Parameters
    ----------
    source : str or binary file object
        A local path or a seekable file object (an fsspec file for remote audio).
    window : ClipWindow
        How much to keep and the shortest acceptable track.

    Returns
    -------
    DecodedClip

    Raises
    ------
    DecodeError
        Unreadable container, truncated data, non-finite samples, silence, or too short; the
        message says which.
    """
    try:
        snd = sf.SoundFile(source)
    except sf.LibsndfileError as sf_error:
        clip = _decode_fallback(source, window, sf_error.error_string.rstrip("."))
    else:
        try:
            with snd:
                clip = _decode_soundfile(snd, window)
        except sf.LibsndfileError as read_error:
            raise DecodeError(f"corrupt or truncated: {read_error.error_string.rstrip('.')}") from read_error
    check_clip(clip, window=window)
    return clip


def check_clip(clip: DecodedClip, *, window: ClipWindow) -> None:
    """Raise :class:`DecodeError` naming the fault when a decoded clip is unusable."""
    if clip.duration_s < window.min_seconds:
        raise DecodeError(f"too short: {clip.duration_s:.2f} s (minimum {window.min_seconds:g} s)")
    # min and max propagate NaN and expose inf: one cheap pass each instead of isfinite and abs
    low, high = float(clip.samples.min()), float(clip.samples.max())
    if not (np.isfinite(low) and np.isfinite(high)):
        raise DecodeError("non-finite samples (NaN or inf) in the audio")
    peak = max(high, -low)
    if peak < SILENCE_PEAK:
        level = "-inf" if peak == 0 else f"{20 * np.log10(peak):.0f}"
        raise DecodeError(f"silent: peak level {level} dBFS over the clip window")


def _decode_soundfile(snd: sf.SoundFile, window: ClipWindow) -> DecodedClip:
    sr, frames = int(snd.samplerate), int(snd.frames)
    if frames <= 0:
        raise DecodeError("no audio frames in the file")
    if _TRUNCATED_WAV.search(snd.extra_info):
        raise DecodeError("truncated: the data chunk is shorter than its header declares")
    wanted = min(frames, round(window.seconds * sr))
    start = (frames - wanted) // 2
    if start and snd.seekable():
        snd.seek(start)
    elif start:
        snd.read(start, dtype="float32")
    data = snd.read(wanted, dtype="float32", always_2d=True)
    if data.shape[0] < wanted:
        raise DecodeError(
            f"truncated: the header declares {frames} frames but decoding stopped at {start + data.shape[0]}"
        )
    _probe_end(snd, frames, start + wanted)
    return DecodedClip(np.ascontiguousarray(data.T), sr, frames / sr, start / sr)


def _probe_end(snd: sf.SoundFile, frames: int, position: int) -> None:
    """Read the declared last frame so a file cut after the window is still caught as truncated."""
    if position >= frames or not snd.seekable():
        return
    snd.seek(frames - 1)
    if snd.read(1, dtype="float32").shape[0] == 0:
        raise DecodeError(f"truncated: the header declares {frames} frames but the end is missing")


def _decode_fallback(source: str | BinaryIO, window: ClipWindow, sf_error: str) -> DecodedClip:
    """Decode with PyAV (FFmpeg) what libsndfile rejects; keep libsndfile's reason when that fails too."""
    try:
        import av
    except ImportError:
        raise DecodeError(f"not readable by libsndfile ({sf_error})") from None
    if not isinstance(source, str):
        source.seek(0)
    try:
        with av.open(source) as container:
            stream = container.streams.audio[0]
            chunks = [frame.to_ndarray() for frame in container.decode(stream)]
            sr = int(stream.rate)
    except (av.FFmpegError, IndexError, ValueError) as av_error:
        if kind := sniff_non_audio(source):
            raise DecodeError(f"not audio: the file is {kind}") from av_error
        reason = getattr(av_error, "strerror", None) or str(av_error)
        raise DecodeError(f"not audio: libsndfile says {sf_error}; FFmpeg says {reason}") from av_error
    if not chunks:
        raise DecodeError("no audio frames in the file")
    # PyAV gives (channels, n) for planar formats and (1, n * channels) for packed ones.
    channels = stream.codec_context.channels or 1
    planar = [c if c.shape[0] == channels else c.reshape(-1, channels).T for c in chunks]
    samples = _to_float32(np.concatenate(planar, axis=1))
    frames = samples.shape[1]
    wanted = min(frames, round(window.seconds * sr))
    start = (frames - wanted) // 2
    return DecodedClip(np.ascontiguousarray(samples[:, start : start + wanted]), sr, frames / sr, start / sr)


_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"<!doctype html", "an HTML page"),
    (b"<html", "an HTML page"),
    (b"<?xml", "an XML document"),
)


def sniff_non_audio(source: str | BinaryIO) -> str | None:
    """What a file that no decoder reads is instead (``"a PNG image"``, ``"a text file"``), from its
    first bytes, so its manifest row says so; None when it looks like nothing known."""
    if isinstance(source, str):
        try:
            with open(source, "rb") as handle:
                head = handle.read(512)
        except OSError:
            return None
    else:
        source.seek(0)
        head = source.read(512)
    lowered = head.lstrip().lower()
    for signature, kind in _SIGNATURES:
        if lowered.startswith(signature.lower()):
            return kind
    if b"\x00" in head:  # binary: audio headers, and most other formats, hold NUL bytes
        return None
    text = head.decode("utf-8", errors="ignore")  # 512 bytes may end inside a character
    printable = all(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return "a text file" if text.strip() and printable else None


def stream_blocks(source: str | BinaryIO, *, block_s: float, overlap_s: float) -> Iterator[AudioBlock]:
    """Decode a whole file as overlapping blocks, so an hour of audio costs one block of memory.

    Block ``k`` starts at ``k * block_s`` and holds ``block_s + overlap_s`` seconds (less at the end),
    so any span of up to ``overlap_s`` that starts inside a block lies wholly in it.

    Raises
    ------
    DecodeError
        Unreadable, empty or non-finite audio; the message says which.
    """
    try:
        snd = sf.SoundFile(source)
    except sf.LibsndfileError as sf_error:
        whole = _decode_fallback(source, ClipWindow(seconds=_UNBOUNDED_S, min_seconds=0), sf_error.error_string)
        yield from _blocks_of(whole.samples, whole.sample_rate, block_s=block_s, overlap_s=overlap_s)
        return
    with snd:
        sr = int(snd.samplerate)
        step, extra = round(block_s * sr), round(overlap_s * sr)
        try:
            pending = snd.read(step + extra, dtype="float32", always_2d=True).T
            if pending.shape[1] == 0:
                raise DecodeError("no audio frames in the file")
            start = 0
            while True:  # read the next step before yielding, so the final block knows it is last
                full = pending.shape[1] == step + extra
                more = snd.read(step, dtype="float32", always_2d=True).T if full else pending[:, :0]
                last = more.shape[1] == 0
                yield _checked_block(start, pending, sr, last=last)
                if last:
                    return
                pending, start = np.concatenate([pending[:, step:], more], axis=1), start + step
        except sf.LibsndfileError as read_error:
            raise DecodeError(f"corrupt or truncated: {read_error.error_string.rstrip('.')}") from read_error


@dataclass(frozen=True)
class AudioBlock:
    """Samples float32 [shape=(channels, n)] starting ``start`` samples into the file."""

    start: int
    samples: np.ndarray
    sample_rate: int
    last: bool


_UNBOUNDED_S = 1e7  # a window longer than any file: the fallback decoder returns all of it


def _blocks_of(samples: np.ndarray, sr: int, *, block_s: float, overlap_s: float) -> Iterator[AudioBlock]:
    if samples.shape[1] == 0:
        raise DecodeError("no audio frames in the file")
    step, extra = round(block_s * sr), round(overlap_s * sr)
    for start in range(0, samples.shape[1], step):
        block = samples[:, start : start + step + extra]
        last = start + step + extra >= samples.shape[1]
        yield _checked_block(start, block, sr, last=last)
        if last:
            return


def _checked_block(start: int, samples: np.ndarray, sr: int, *, last: bool) -> AudioBlock:
    if not np.isfinite(samples).all():
        raise DecodeError(f"non-finite samples (NaN or inf) after {start / sr:.1f} s")
    return AudioBlock(start, np.ascontiguousarray(samples), sr, last)


def _to_float32(samples: np.ndarray) -> np.ndarray:
    if np.issubdtype(samples.dtype, np.integer):
        return (samples / float(np.iinfo(samples.dtype).max + 1)).astype(np.float32)
    return samples.astype(np.float32, copy=False)


def resample(samples: np.ndarray, *, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample a mono float32 signal with soxr's high-quality filter (librosa's default).

    Examples
    --------
    >>> resample(np.zeros(44100, np.float32), orig_sr=44100, target_sr=22050).shape
    (22050,)
    """
    if orig_sr == target_sr:
        return samples
    return soxr.resample(samples, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def fit_length(samples: np.ndarray, *, size: int) -> np.ndarray:
    """Zero-pad (at the end) or cut a mono signal to exactly ``size`` samples.

    Examples
    --------
    >>> fit_length(np.ones(3, np.float32), size=5).tolist()
    [1.0, 1.0, 1.0, 0.0, 0.0]
    """
    if samples.shape[0] >= size:
        return samples[:size]
    return np.pad(samples, (0, size - samples.shape[0]))
