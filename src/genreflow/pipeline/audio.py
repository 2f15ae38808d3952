"""Decoding: any supported file to a float32 clip window, mixed to the channel views asked for.

soundfile (libsndfile: WAV, AU, FLAC, OGG, MP3, AIFF, ...) reads first and seeks straight to the
window, so an hour-long file costs no more memory than a 30-s one. Where libsndfile cannot read the
container (M4A/AAC, Opus, WMA), PyAV decodes it when installed (``genreflow[decoders]``).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
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
_WAV_DATA_SIZE = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
# Sizes a writer puts in the header before it knows the length (streamed WAV); not a promise of data.
_PLACEHOLDER_SIZES = frozenset({0xFFFFFFFF, 0x7FFFFFFF})
_OGG_CUT = "File ended unexpectedly"  # libsndfile's note for an Ogg stream without its last page
_SF_UNRECOGNISED = 1  # SF_ERR_UNRECOGNISED_FORMAT; other open errors mean libsndfile knew the container
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

    Notes
    -----
    libmpg123's resync notes on a damaged MP3 are kept off stderr (:func:`silence_mpg123`).
    """
    quiet = silence_mpg123() if _may_be_mpeg(source) else contextlib.nullcontext()
    with quiet:
        try:
            snd = sf.SoundFile(source)
        except sf.LibsndfileError as sf_error:
            open_error = sf_error
        else:
            open_error = None
            try:
                with snd:
                    clip = _decode_soundfile(snd, window)
            except sf.LibsndfileError as read_error:
                raise DecodeError(f"corrupt or truncated: {_sf_reason(read_error)}") from read_error
    if open_error is not None:
        clip = _decode_fallback(source, window, open_error)
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
    if high - low < 2 * SILENCE_PEAK:  # a DC offset: a level that never moves carries no signal either
        raise DecodeError(f"silent: a constant level of {(high + low) / 2:.3g} (DC offset only) over the clip window")


def _decode_soundfile(snd: sf.SoundFile, window: ClipWindow) -> DecodedClip:
    sr, frames = int(snd.samplerate), int(snd.frames)
    info = snd.extra_info
    cut = _WAV_DATA_SIZE.search(info)
    if cut and int(cut[1]) > int(cut[2]) and int(cut[1]) not in _PLACEHOLDER_SIZES:
        raise DecodeError("truncated: the data chunk is shorter than its header declares")
    if frames <= 0 and _OGG_CUT in info:
        raise DecodeError("truncated: the Ogg stream ends before its last page")
    if frames <= 0:
        raise DecodeError("no audio frames in the file")
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


def _sf_reason(error: sf.LibsndfileError) -> str:
    """libsndfile's message for ``error``, reworded where it misleads about a file that was read."""
    message = error.error_string.removeprefix("Error : ").rstrip(".")
    if "not a regular file" in message:  # what its MPEG decoder says when no frame decodes
        return "no MPEG audio frame could be decoded"
    if message == "Unspecified internal error":  # the MPEG decoder giving up on damaged frames
        return "the decoder stopped on damaged data"
    return message or f"libsndfile error {error.code}"


def _decode_fallback(source: str | BinaryIO, window: ClipWindow, open_error: sf.LibsndfileError) -> DecodedClip:
    """Decode with PyAV (FFmpeg) what libsndfile rejects; keep libsndfile's reason when that fails too.

    A container libsndfile does not recognise is ``not audio``; one it recognised but could not open
    is ``corrupt or truncated`` (a WAV with a malformed header, a cut Ogg or MP3).
    """
    sf_error = _sf_reason(open_error)
    verdict = "not audio" if open_error.code == _SF_UNRECOGNISED else "corrupt or truncated"
    try:
        import av
    except ImportError:
        if kind := sniff_non_audio(source):
            raise DecodeError(f"not audio: the file is {kind}") from None
        raise DecodeError(f"{verdict}: libsndfile says {sf_error}") from None
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
        raise DecodeError(f"{verdict}: libsndfile says {sf_error}; FFmpeg says {reason}") from av_error
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
    head = _first_bytes(source, 512)
    if head is None:
        return None
    lowered = head.lstrip().lower()
    for signature, kind in _SIGNATURES:
        if lowered.startswith(signature.lower()):
            return kind
    if b"\x00" in head:  # binary: audio headers, and most other formats, hold NUL bytes
        return None
    text = head.decode("utf-8", errors="ignore")  # 512 bytes may end inside a character
    printable = all(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return "a text file" if text.strip() and printable else None


_MPEG_EXTENSIONS = (".mp3", ".mp2", ".mpga")


def _may_be_mpeg(source: str | BinaryIO) -> bool:
    """Whether libsndfile may hand ``source`` to libmpg123: an MPEG name, an ID3 tag or a frame sync
    (a source that cannot be peeked at is filtered, to be safe)."""
    if isinstance(source, str) and source.lower().endswith(_MPEG_EXTENSIONS):
        return True
    head = _first_bytes(source, 3)
    if head is None:
        return True
    return head.startswith(b"ID3") or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)


def _first_bytes(source: str | BinaryIO, n: int) -> bytes | None:
    """The first ``n`` bytes of a path or a seekable file (left where it was), None if unreadable."""
    try:
        if isinstance(source, str):
            with open(source, "rb") as handle:
                return handle.read(n)
        position = source.tell()
        source.seek(0)
        head = source.read(n)
        source.seek(position)
        return head
    except (OSError, ValueError):
        return None


# libmpg123's own lines: "Note: Trying to resync...", "Warning: Xing stream size off ...",
# "[src/libmpg123/parse.c:wetwork():1349] error: Giving up resync ...".
_MPG123_LINE = re.compile(rb"^(?:(?:Note|Warning): |\[[^\]\n]*mpg123[^\]\n]*\] )")


class _Mpg123Filter:
    """Process-wide: while any thread decodes MPEG, fd 2 is a pipe whose lines are copied to the real
    stderr unless they are libmpg123's. Counted, so overlapping decodes share one pipe; other threads'
    output (logs, progress bars) passes through meanwhile, a line later at most."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._saved: int | None = None
        self._forwarder: threading.Thread | None = None

    def enter(self) -> None:
        with self._lock:
            self._users += 1
            if self._users > 1:
                return
            _flush_stderr()
            opened: list[int] = []
            try:
                opened.append(os.dup(2))  # the real stderr, to restore
                opened.extend(os.pipe())
                opened.append(os.dup(opened[0]))  # the real stderr, for the forwarder
            except OSError:  # no fd 2, or out of descriptors: let the notes through, never fail the decode
                for fd in opened:
                    os.close(fd)
                return
            saved, read, write, out = opened
            self._forwarder = threading.Thread(
                target=_forward_stderr, args=(read, out), name="genreflow-mpg123-filter", daemon=True
            )
            self._forwarder.start()
            os.dup2(write, 2)
            os.close(write)
            self._saved = saved

    def exit(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users or self._saved is None:
                return
            _flush_stderr()
            os.dup2(self._saved, 2)  # drops the pipe's last writer: the forwarder drains it and stops
            os.close(self._saved)
            self._saved = None
            if self._forwarder is not None:
                # a child process started meanwhile keeps the pipe open: its lines are still forwarded
                self._forwarder.join(timeout=1.0)
                self._forwarder = None


def _flush_stderr() -> None:
    with contextlib.suppress(AttributeError, OSError, ValueError):
        sys.stderr.flush()


def _forward_stderr(read: int, out: int) -> None:
    """Copy the pipe at ``read`` to ``out`` line by line, dropping libmpg123's lines; closes both."""
    pending = b""
    try:
        while chunk := os.read(read, 65536):
            *lines, pending = (pending + chunk).split(b"\n")
            kept = b"".join(line + b"\n" for line in lines if not _MPG123_LINE.match(line))
            # a partial line is passed on at once unless it may be the start of one of libmpg123's
            if pending and pending[:1] not in (b"N", b"W", b"["):
                kept, pending = kept + pending, b""
            _write_all(out, kept)
        if not _MPG123_LINE.match(pending):
            _write_all(out, pending)
    except OSError:
        pass
    finally:
        os.close(read)
        os.close(out)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


_MPG123_FILTER = _Mpg123Filter()


@contextlib.contextmanager
def silence_mpg123() -> Iterator[None]:
    """Inside the block, libmpg123's resync notes on a damaged MP3 ("Illegal Audio-MPEG-Header",
    "Trying to resync") are kept off stderr; the decode's reason still says what is wrong.

    libmpg123 writes them to fd 2 itself and libsndfile offers no quiet switch, so fd 2 is filtered
    for the whole process while any thread is inside (see :class:`_Mpg123Filter`): what others write
    meanwhile still appears.
    """
    _MPG123_FILTER.enter()
    try:
        yield
    finally:
        _MPG123_FILTER.exit()


def stream_blocks(source: str | BinaryIO, *, block_s: float, overlap_s: float) -> Iterator[AudioBlock]:
    """Decode a whole file as overlapping blocks, so an hour of audio costs one block of memory.

    Block ``k`` starts at ``k * block_s`` and holds ``block_s + overlap_s`` seconds (less at the end),
    so any span of up to ``overlap_s`` that starts inside a block lies wholly in it.

    Raises
    ------
    DecodeError
        Unreadable, empty or non-finite audio; the message says which.
    """
    mpeg = _may_be_mpeg(source)

    def quiet() -> contextlib.AbstractContextManager:  # around each libsndfile call, never across a yield
        return silence_mpg123() if mpeg else contextlib.nullcontext()

    try:
        with quiet():
            snd = sf.SoundFile(source)
    except sf.LibsndfileError as sf_error:
        whole = _decode_fallback(source, ClipWindow(seconds=_UNBOUNDED_S, min_seconds=0), sf_error)
        yield from _blocks_of(whole.samples, whole.sample_rate, block_s=block_s, overlap_s=overlap_s)
        return
    with snd:
        sr = int(snd.samplerate)
        step, extra = round(block_s * sr), round(overlap_s * sr)
        try:
            with quiet():
                pending = snd.read(step + extra, dtype="float32", always_2d=True).T
            if pending.shape[1] == 0:
                raise DecodeError("no audio frames in the file")
            start = 0
            while True:  # read the next step before yielding, so the final block knows it is last
                full = pending.shape[1] == step + extra
                with quiet():
                    more = snd.read(step, dtype="float32", always_2d=True).T if full else pending[:, :0]
                last = more.shape[1] == 0
                yield _checked_block(start, pending, sr, last=last)
                if last:
                    return
                pending, start = np.concatenate([pending[:, step:], more], axis=1), start + step
        except sf.LibsndfileError as read_error:
            raise DecodeError(f"corrupt or truncated: {_sf_reason(read_error)}") from read_error


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
