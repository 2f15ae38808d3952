"""A generated corpus of bad and odd input (issue #12): what real catalogues hold besides clean audio.

:func:`write_corpus` writes every kind of :data:`KINDS` into label folders (``<root>/<label>/<file>``),
deterministically (fixed signals, no randomness, no network) and cheaply: the 20-minute WAV is one
second written 1,200 times, the 60-minute MP3 one encoded minute whose frames are repeated.

Each :class:`Kind` says what a person expects of it:

- ``ok``: stored;
- ``failed``: a manifest row with ``reason`` (a regular expression searched in the row's error);
- ``skipped``: a duplicate of another file (``reason`` names the original);
- ``ignored``: never listed (not a file, or macOS metadata), so no manifest row at all;
- ``either``: ok or failed, but never a crash, a hang or a reason a person cannot read.

The kinds with a ``race`` change between listing and decoding (a file deleted or still being
written); :func:`after_listing` makes those changes.
"""

from __future__ import annotations

import functools
import gzip
import io
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.conftest import tone

OK, FAILED, SKIPPED, IGNORED, EITHER = "ok", "failed", "skipped", "ignored", "either"
SR = 22050
WINDOW_S = 5.0  # the clip window the corpus is ingested with: a short window keeps the run cheap
Maker = Callable[[Path], None]


@dataclass(frozen=True)
class Kind:
    """One kind of input: where it lies under the root and the outcome a person expects."""

    name: str
    path: str  # relative to the corpus root: <label>/<file>
    status: str  # OK, FAILED, SKIPPED, IGNORED or EITHER
    reason: str | None = None  # regular expression searched in the manifest row's error
    make: Maker = field(default=lambda path: None, repr=False, compare=False)
    race: Maker | None = field(default=None, repr=False, compare=False)  # run between listing and decoding


# --- signals and encodings -----------------------------------------------------------------------


def _freq(name: str) -> float:
    """A frequency of its own for every kind, so no two good files hold the same bytes by accident."""
    return 110.0 + zlib.crc32(name.encode()) % 1500


def _signal(name: str, seconds: float = 3.0, *, sr: int = SR, channels: int = 1) -> np.ndarray:
    return tone(seconds, sr=sr, freq=_freq(name), channels=channels)


def _encoded(data: np.ndarray, sr: int, **kwargs) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, data, sr, **kwargs)
    return buffer.getvalue()


@functools.cache
def _good(fmt: str) -> bytes:
    """Three seconds of a tone in one container (``WAV``, ``FLAC``, ``OGG``, ``MP3``), to damage."""
    subtype = {"WAV": "PCM_16", "FLAC": "PCM_16", "OGG": "VORBIS", "MP3": "MPEG_LAYER_III"}[fmt]
    return _encoded(tone(3, freq=330.0), SR, format=fmt, subtype=subtype)


def _audio(name: str, seconds: float = 3.0, *, sr: int = SR, channels: int = 1, **kwargs) -> Maker:
    def make(path: Path) -> None:
        sf.write(path, _signal(name, seconds, sr=sr, channels=channels), sr, **kwargs)

    return make


def _samples(data: Callable[[], np.ndarray], *, sr: int = SR, subtype: str = "FLOAT") -> Maker:
    def make(path: Path) -> None:
        sf.write(path, data(), sr, subtype=subtype, format="WAV")

    return make


def _bytes(data: Callable[[], bytes]) -> Maker:
    def make(path: Path) -> None:
        path.write_bytes(data())

    return make


def _cut(fmt: str, *, keep: float | int) -> Callable[[], bytes]:
    """The first ``keep`` bytes (an int) or fraction (a float) of a good file."""
    good = _good(fmt)
    return lambda: good[: keep if isinstance(keep, int) else int(len(good) * keep)]


def _damaged(fmt: str, *, at: float, size: int) -> Callable[[], bytes]:
    """A good file with ``size`` bytes from the fraction ``at`` onward overwritten by a fixed pattern."""

    def data() -> bytes:
        good = bytearray(_good(fmt))
        start = int(len(good) * at) if isinstance(at, float) else at
        good[start : start + size] = bytes((i * 151 + 17) % 256 for i in range(size))
        return bytes(good)

    return data


def _wav_header(*, channels: int, sr: int, bits: int, data_bytes: int, riff_bytes: int | None = None) -> bytes:
    """A canonical 44-byte PCM WAV header declaring ``data_bytes`` of samples."""
    block = channels * bits // 8
    riff = 36 + data_bytes if riff_bytes is None else riff_bytes
    fmt = struct.pack("<HHIIHH", 1, channels, sr, sr * block, block, bits)
    return (
        b"RIFF"
        + struct.pack("<I", riff & 0xFFFFFFFF)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", 16)
        + fmt
        + (b"data" + struct.pack("<I", data_bytes & 0xFFFFFFFF))
    )


def _pcm16(name: str, seconds: float) -> bytes:
    return (np.clip(_signal(name, seconds), -1, 1) * 32767).astype("<i2").tobytes()


def _wav_declaring(name: str, *, declared_s: float, present_s: float, data_bytes: int | None = None) -> Maker:
    """A 16-bit mono WAV whose header declares ``declared_s`` seconds but holds ``present_s``."""

    def make(path: Path) -> None:
        declared = round(declared_s * SR) * 2 if data_bytes is None else data_bytes
        path.write_bytes(_wav_header(channels=1, sr=SR, bits=16, data_bytes=declared) + _pcm16(name, present_s))

    return make


def _wav_with_list_chunk(name: str) -> Maker:
    """A WAV with a LIST/INFO chunk after its data, as many taggers write."""

    def make(path: Path) -> None:
        samples = _pcm16(name, 3.0)
        info = b"INFO" + b"INAM" + struct.pack("<I", 6) + b"title\0"
        chunk = b"LIST" + struct.pack("<I", len(info)) + info
        header = _wav_header(
            channels=1, sr=SR, bits=16, data_bytes=len(samples), riff_bytes=36 + len(samples) + len(chunk)
        )
        path.write_bytes(header + samples + chunk)

    return make


def png_bytes() -> bytes:
    """A valid 1x1 PNG image: what a cover image saved under an audio name holds."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0\xff\0\0"))
        + chunk(b"IEND", b"")
    )


def _appledouble() -> bytes:
    """The resource-fork sidecar macOS writes beside a file on a foreign disk (magic 0x00051607)."""
    entry = struct.pack(">III", 9, 50, 32)  # one entry: Finder info at offset 50, 32 bytes
    return struct.pack(">II", 0x00051607, 0x00020000) + b"Mac OS X        " + struct.pack(">H", 1) + entry + bytes(32)


def _id3_only() -> bytes:
    """An ID3v2 tag (a title) and no audio frames after it: what a failed download leaves."""
    frame = b"TIT2" + struct.pack(">I", 6) + b"\0\0" + b"\x03title"
    return b"ID3\x04\0\0" + bytes(_syncsafe(len(frame))) + frame


def _syncsafe(n: int) -> list[int]:
    return [(n >> 21) & 0x7F, (n >> 14) & 0x7F, (n >> 7) & 0x7F, n & 0x7F]


# --- long files, cheaply --------------------------------------------------------------------------

_L3_KBPS = {3: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)}  # MPEG-1
_L3_KBPS_LSF = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)  # MPEG-2 and 2.5
_MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def mpeg_frames(data: bytes) -> list[bytes]:
    """The Layer III frames of an MP3 without tags, each a ``bytes`` (the encoder's Xing/Info frame first)."""
    frames, at = [], 0
    while at + 4 <= len(data):
        b1, b2 = data[at + 1], data[at + 2]
        if data[at] != 0xFF or b1 & 0xE0 != 0xE0 or (b1 >> 1) & 3 != 1:
            raise ValueError(f"no MPEG Layer III frame header at byte {at}")
        version = (b1 >> 3) & 3
        kbps = (_L3_KBPS.get(version) or _L3_KBPS_LSF)[b2 >> 4]
        rate = _MPEG_RATES[version][(b2 >> 2) & 3]
        length = (144000 if version == 3 else 72000) * kbps // rate + ((b2 >> 1) & 1)
        frames.append(data[at : at + length])
        at += length
    return frames


def _long_mp3(minutes: int) -> Maker:
    """``minutes`` of 8-kHz, 8-kbit/s MP3: one encoded minute, its frames repeated (no Xing frame, so
    the decoder measures the length from the frames), about 60 kB a minute."""

    def make(path: Path) -> None:
        minute = tone(60, sr=8000, freq=_freq("long mp3"))
        frames = mpeg_frames(_encoded(minute, 8000, format="MP3", bitrate_mode="CONSTANT", compression_level=0.99))
        body = b"".join(frames[1:])  # frames[0] is the Xing/Info frame holding the one minute's frame count
        with path.open("wb") as out:
            for _ in range(minutes):
                out.write(body)

    return make


def _long_wav(minutes: int) -> Maker:
    """``minutes`` of 8-kHz 16-bit mono WAV (about 1 MB a minute), written one second at a time."""

    def make(path: Path) -> None:
        second = tone(1, sr=8000, freq=_freq("long wav"))
        with sf.SoundFile(path, "w", 8000, 1, subtype="PCM_16", format="WAV") as out:
            for _ in range(minutes * 60):
                out.write(second)

    return make


# --- links, folders and files that change ---------------------------------------------------------


def _symlink(target: str, *, make_target: Maker | None = None) -> Maker:
    def make(path: Path) -> None:
        if make_target is not None:
            make_target(path.parent / target)
        os.symlink(target, path)

    return make


def _folder(path: Path) -> None:
    path.mkdir()
    (path / "notes.txt").write_text("a folder whose name ends in .wav\n")


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _vanish(path: Path) -> None:
    path.unlink()


def _append(name: str, seconds: float) -> Maker:
    """The writer goes on: ``seconds`` more samples at the end of the file."""

    def grow(path: Path) -> None:
        with path.open("ab") as out:
            out.write(_pcm16(name, seconds))

    return grow


def _dc(seconds: float, level: float) -> Callable[[], np.ndarray]:
    return lambda: np.full(round(seconds * SR), level, np.float32)


def _with(value: float) -> Callable[[], np.ndarray]:
    """A tone with one sample of ``value`` in the middle (inside any centred window)."""

    def data() -> np.ndarray:
        samples = tone(3, freq=_freq(f"with {value}"))
        samples[len(samples) // 2] = value
        return samples

    return data


_LONG_NAME = "long name " + "é" * 110 + ".wav"  # 224 bytes in UTF-8 (a file name may hold 255)
_HTML = b"<!DOCTYPE html><html><head><title>404 Not Found</title></head><body>Not Found</body></html>\n"

# One kind a line (two where the reason is long): the table the tests read.
# fmt: off
KINDS: tuple[Kind, ...] = (
    # Same content under two names: sorted first, so both sit in the first shard, in this order.
    Kind("duplicate (original)", "ambient/dup 1.wav", OK, make=_audio("duplicate")),
    Kind("duplicate (copy)", "ambient/dup 2.wav", SKIPPED, r"^duplicate of .*/ambient/dup 1\.wav$",
         make=_audio("duplicate")),
    # Truncated and corrupt headers.
    Kind("wav header cut at 20 bytes", "blues/cut header.wav", FAILED,
         r"^corrupt or truncated: .*Malformed 'fmt ' chunk", make=_bytes(_cut("WAV", keep=20))),
    Kind("wav header only (44 bytes)", "blues/header only.wav", FAILED,
         r"^truncated: the data chunk is shorter than its header declares$", make=_bytes(_cut("WAV", keep=44))),
    Kind("wav fmt chunk zeroed", "blues/zeroed fmt.wav", FAILED,
         r"^corrupt or truncated: .*Malformed 'fmt ' chunk", make=_bytes(_damaged("WAV", at=20, size=16))),
    Kind("wav data chunk declares more than the file has", "blues/short data.wav", FAILED,
         r"^truncated: the data chunk is shorter than its header declares$",
         make=_wav_declaring("short data", declared_s=6, present_s=2)),
    Kind("wav data size 0xFFFFFFFF (streamed)", "blues/streamed.wav", OK,
         make=_wav_declaring("streamed", declared_s=0, present_s=3, data_bytes=0xFFFFFFFF)),
    Kind("wav data size 0 (header never finalised)", "blues/unfinalised.wav", FAILED, r"^no audio frames",
         make=_wav_declaring("unfinalised", declared_s=0, present_s=3)),
    Kind("flac header cut at 30 bytes", "blues/cut header.flac", FAILED, r"^corrupt or truncated: ",
         make=_bytes(_cut("FLAC", keep=30))),
    Kind("flac STREAMINFO overwritten", "blues/bad streaminfo.flac", FAILED, r"^corrupt or truncated: ",
         make=_bytes(_damaged("FLAC", at=8, size=34))),
    Kind("flac cut in half", "blues/half.flac", FAILED, r"^(corrupt or )?truncated",
         make=_bytes(_cut("FLAC", keep=0.5))),
    Kind("flac frames overwritten", "blues/damaged.flac", FAILED, r"^corrupt or truncated: ",
         make=_bytes(_damaged("FLAC", at=0.4, size=2000))),
    Kind("ogg header cut at 30 bytes", "blues/cut header.ogg", FAILED, r"^corrupt or truncated: ",
         make=_bytes(_cut("OGG", keep=30))),
    Kind("ogg cut in half", "blues/half.ogg", FAILED, r"^(corrupt or )?truncated", make=_bytes(_cut("OGG", keep=0.5))),
    Kind("ogg pages overwritten", "blues/damaged.ogg", FAILED, r"^corrupt or truncated: ",
         make=_bytes(_damaged("OGG", at=0.4, size=2000))),
    Kind("mp3 cut at 100 bytes", "blues/cut header.mp3", FAILED, r"^corrupt or truncated: .*no MPEG audio frame",
         make=_bytes(_cut("MP3", keep=100))),
    Kind("mp3 cut in half", "blues/half.mp3", FAILED, r"^truncated: ", make=_bytes(_cut("MP3", keep=0.5))),
    Kind("mp3 frames overwritten", "blues/damaged.mp3", EITHER, make=_bytes(_damaged("MP3", at=0.4, size=2000))),
    Kind("mp3 with only an ID3 tag", "blues/tag only.mp3", FAILED, r"^not audio: ", make=_bytes(_id3_only)),
    # Zero bytes, and other files wearing an audio extension.
    Kind("zero-byte wav", "country/empty.wav", FAILED, r"^empty file \(0 bytes\)$", make=_bytes(lambda: b"")),
    Kind("zero-byte mp3", "country/empty.mp3", FAILED, r"^empty file \(0 bytes\)$", make=_bytes(lambda: b"")),
    Kind("zero-byte flac", "country/empty.flac", FAILED, r"^empty file \(0 bytes\)$", make=_bytes(lambda: b"")),
    Kind("text as wav", "country/notes.wav", FAILED, r"^not audio: the file is a text file$",
         make=_bytes(lambda: b"track list:\n1. intro\n2. outro\n")),
    Kind("png as flac", "country/cover.flac", FAILED, r"^not audio: the file is a PNG image$", make=_bytes(png_bytes)),
    Kind("html as mp3", "country/download.mp3", FAILED, r"^not audio: the file is an HTML page$",
         make=_bytes(lambda: _HTML)),
    Kind("gzip as ogg", "country/archive.ogg", FAILED, r"^not audio: the file is a gzip archive$",
         make=_bytes(lambda: gzip.compress(b"audio? no." * 100, mtime=0))),
    Kind("AppleDouble ._ file", "country/._song.wav", IGNORED, make=_bytes(_appledouble)),
    Kind("AppleDouble under __MACOSX", "__MACOSX/country/._song.wav", IGNORED, make=_bytes(_appledouble)),
    # Signals nobody can classify.
    Kind("silence", "disco/silence.wav", FAILED, r"^silent: peak level -inf dBFS", make=_samples(_dc(3, 0.0))),
    Kind("DC offset only", "disco/dc only.wav", FAILED, r"^silent: .*DC offset", make=_samples(_dc(3, 0.25))),
    Kind("NaN samples (float wav)", "disco/nan.wav", FAILED, r"^non-finite samples", make=_samples(_with(np.nan))),
    Kind("+Inf samples (float wav)", "disco/plus inf.wav", FAILED, r"^non-finite samples",
         make=_samples(_with(np.inf))),
    Kind("-Inf samples (float wav)", "disco/minus inf.wav", FAILED, r"^non-finite samples",
         make=_samples(_with(-np.inf))),
    Kind("float wav far over full scale", "disco/overs.wav", EITHER,
         make=_samples(lambda: tone(3, freq=_freq("overs")) * 1000)),
    Kind("half a second", "disco/half second.wav", FAILED, r"^too short: 0\.50 s \(minimum 1 s\)$",
         make=_audio("half second", 0.5)),
    Kind("one sample", "disco/one sample.wav", FAILED, r"^too short: 0\.00 s", make=_samples(lambda: np.ones(1, "f4"))),
    Kind("exactly one second", "disco/one second.wav", OK, make=_audio("one second", 1.0)),
    Kind("20-minute wav", "hiphop/twenty minutes.wav", OK, make=_long_wav(20)),
    Kind("60-minute mp3", "hiphop/sixty minutes.mp3", OK, make=_long_mp3(60)),
    # Rates, depths, channels, layouts.
    Kind("8 kHz", "jazz/8k.wav", OK, make=_audio("8k", sr=8000)),
    Kind("11.025 kHz", "jazz/11k.wav", OK, make=_audio("11k", sr=11025)),
    Kind("44.1 kHz flac", "jazz/44k.flac", OK, make=_audio("44k", sr=44100)),
    Kind("48 kHz ogg", "jazz/48k.ogg", OK, make=_audio("48k", sr=48000)),
    Kind("48 kHz mp3", "jazz/48k.mp3", OK, make=_audio("48k mp3", sr=48000)),
    Kind("88.2 kHz", "jazz/88k.wav", OK, make=_audio("88k", sr=88200)),
    Kind("96 kHz 24-bit", "jazz/96k.wav", OK, make=_audio("96k", sr=96000, subtype="PCM_24")),
    Kind("8-bit (unsigned) wav", "metal/u8.wav", OK, make=_audio("u8", subtype="PCM_U8")),
    Kind("16-bit wav", "metal/s16.wav", OK, make=_audio("s16", subtype="PCM_16")),
    Kind("24-bit wav", "metal/s24.wav", OK, make=_audio("s24", subtype="PCM_24")),
    Kind("32-bit int wav", "metal/s32.wav", OK, make=_audio("s32", subtype="PCM_32")),
    Kind("32-bit float wav", "metal/f32.wav", OK, make=_audio("f32", subtype="FLOAT")),
    Kind("64-bit float wav", "metal/f64.wav", OK, make=_audio("f64", subtype="DOUBLE")),
    Kind("stereo", "pop/2ch.wav", OK, make=_audio("2ch", channels=2)),
    Kind("3 channels", "pop/3ch.wav", OK, make=_audio("3ch", channels=3)),
    Kind("4 channels", "pop/4ch.flac", OK, make=_audio("4ch", channels=4)),
    Kind("5 channels", "pop/5ch.wav", OK, make=_audio("5ch", channels=5)),
    Kind("6 channels (5.1)", "pop/6ch.wav", OK, make=_audio("6ch", channels=6)),
    Kind("WAVE_FORMAT_EXTENSIBLE stereo", "pop/extensible.wav", OK,
         make=_audio("wavex", channels=2, format="WAVEX", subtype="PCM_16")),
    Kind("WAVE_FORMAT_EXTENSIBLE 5.1 24-bit", "pop/extensible 6ch.wav", OK,
         make=_audio("wavex6", channels=6, format="WAVEX", subtype="PCM_24")),
    Kind("wav with a LIST chunk after the data", "pop/tagged.wav", OK, make=_wav_with_list_chunk("tagged")),
    Kind("flac named .mp3", "pop/really flac.mp3", OK, make=_audio("really flac", format="FLAC")),
    Kind("opus in .ogg", "pop/opus.ogg", OK, make=_audio("opus", sr=48000, format="OGG", subtype="OPUS")),
    Kind("aiff", "pop/aiff.aiff", OK, make=_audio("aiff", format="AIFF")),
    Kind("au", "pop/sun.au", OK, make=_audio("au", format="AU")),
    # Names.
    Kind("non-ASCII name", "reggae/ünïcødé — 音楽.wav", OK, make=_audio("unicode")),
    Kind("spaces in the name", "reggae/  two  spaces .wav", OK, make=_audio("spaces")),
    Kind("a 224-byte name", f"reggae/{_LONG_NAME}", OK, make=_audio("long name")),
    Kind("upper-case extension", "reggae/LOUD.WAV", OK, make=_audio("upper")),
    Kind("non-ASCII label folder", "électro/café.flac", OK, make=_audio("electro", format="FLAC")),
    # Things in the tree that are not files.
    Kind("a folder named x.wav", "rock/folder.wav", IGNORED, make=_folder),
    Kind("broken symlink", "rock/broken link.wav", FAILED,
         r"^broken symbolic link: its target missing\.wav does not exist$", make=_symlink("missing.wav")),
    Kind("symlink to itself", "rock/self loop.wav", FAILED, r"^symbolic link loop", make=_symlink("self loop.wav")),
    Kind("two symlinks in a loop", "rock/loop a.wav", FAILED, r"^symbolic link loop", make=_symlink("loop b.wav")),
    Kind("two symlinks in a loop (other)", "rock/loop b.wav", FAILED, r"^symbolic link loop",
         make=_symlink("loop a.wav")),
    Kind("a folder symlink looping to its parent", "rock/parent.wav", IGNORED, make=_symlink("..")),
    Kind("a symlink to audio named .bin", "rock/link.wav", OK,
         make=_symlink("target.bin", make_target=_audio("link", format="WAV"))),
    Kind("a named pipe called x.wav", "rock/pipe.wav", FAILED, r"^not a regular file: a named pipe", make=_fifo),
    # Files that change between listing and decoding.
    Kind("deleted after listing", "soul/vanishes.wav", FAILED, r"^file not found \(removed after it was listed\?\)$",
         make=_audio("vanishes"), race=_vanish),
    Kind("still being written", "soul/still writing.wav", FAILED, r"^truncated: the data chunk is shorter",
         make=_wav_declaring("still writing", declared_s=6, present_s=1), race=_append("still writing", 2)),
    Kind("finished writing before it was decoded", "soul/just finished.wav", OK,
         make=_wav_declaring("just finished", declared_s=4, present_s=1), race=_append("just finished", 3)),
)
# fmt: on


def write_corpus(root: Path, kinds: tuple[Kind, ...] = KINDS) -> tuple[Kind, ...]:
    """Write ``kinds`` under ``root`` (label folders made as needed); returns them.

    Kinds are written in order, so a symlink's target may be any kind listed before it.
    """
    for kind in kinds:
        path = root / kind.path
        path.parent.mkdir(parents=True, exist_ok=True)
        kind.make(path)
    return kinds


def after_listing(root: Path, kinds: tuple[Kind, ...] = KINDS) -> None:
    """Make the changes of the kinds with a ``race``: what happens between listing and decoding."""
    for kind in kinds:
        if kind.race is not None:
            kind.race(root / kind.path)
