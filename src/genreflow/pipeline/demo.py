"""A deterministic synthetic music catalogue in the GTZAN layout, for demos, tests and benchmarks.

``easy`` (the default): seven "genres" differ the way real ones do, in rhythm (straight, shuffled,
one-drop, double-kick), tempo, timbre (plucked saw, bowed sines, square stabs, distorted power chords,
organ) and harmony (dominant sevenths, minor, major-seventh, jazz ii-V-I). Key, tempo, levels, timbre
and noise vary per track, so a model has to learn the patterns rather than one fingerprint per class;
every model still scores 100 % on it, so it shows that the pipeline works, not which recipe is better.

``hard``: GTZAN's ten genres with overlapping tempo ranges, several built in pairs that share their
instruments (blues and country a plucked guitar and backbeat, rock and metal a distorted guitar and
root bass, pop and disco a square synth and octave bass); each track borrows whole parts (drums,
harmony, comping instrument, bass) from another genre now and then, and draws its key, tempo, the
mix of its parts, a recording tone, level changes and noise; clips last 6 s by default. Recipes
score apart on it. It is a sanity check that a change helps, not a target: it is not music.

Files come in mixed formats, rates and channel counts, plus a few broken ones that ingest must report.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile as sf
import soxr

from .demo_config import CLIP_SECONDS, DEFAULT_DIFFICULTY, DEFAULT_PER_CLASS, DEFAULT_SEED, DIFFICULTIES
from .errors import ParameterError

SR = 22050
FORMATS = (("wav", "WAV", "PCM_16"), ("mp3", "MP3", None), ("flac", "FLAC", "PCM_16"))
OUTPUT_RATES = (22050, 44100, 16000, 48000)


@dataclass(frozen=True)
class Style:
    tempo: tuple[float, float]
    swing: float  # 0 straight, 1/3 triplet shuffle
    kicks: tuple[float, ...]  # positions in beats within a 4-beat bar
    snares: tuple[float, ...]
    hats: float  # hat every this many beats (0 = none)
    chords: tuple[tuple[int, ...], ...]  # semitone sets over the key's root, one per bar
    timbre: str
    chord_rhythm: tuple[float, ...]  # chord onsets within the bar
    chord_length: float  # beats
    bass: str  # root, walking, octaves, sub, none
    open_hats: bool = False  # off-beat hats ring open (disco)
    ride: bool = False  # a swung ride-cymbal pattern (jazz)
    arpeggio: bool = False  # chords played one note at a time, an octave up (classical)


STYLES: dict[str, Style] = {
    "blues": Style(
        (78, 100),
        1 / 3,
        (0, 2),
        (1, 3),
        0.5,
        ((0, 4, 7, 10), (5, 9, 12, 15), (0, 4, 7, 10), (7, 11, 14, 17)),
        "pluck",
        (0, 1.5, 2, 3.5),
        0.6,
        "walking",
    ),
    "classical": Style(
        (60, 80),
        0.0,
        (),
        (),
        0,
        ((0, 4, 7), (5, 9, 12), (7, 11, 14), (9, 12, 16)),
        "strings",
        (0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5),
        1.2,
        "none",
        arpeggio=True,
    ),
    "disco": Style(
        (115, 128),
        0.0,
        (0, 1, 2, 3),
        (1, 3),
        0.5,
        ((0, 4, 7, 11), (9, 12, 16, 19), (5, 9, 12, 16), (7, 11, 14, 17)),
        "square",
        (0.5, 1.5, 2.5, 3.5),
        0.25,
        "octaves",
        open_hats=True,
    ),
    "hiphop": Style(
        (80, 95),
        0.2,
        (0, 0.75, 2.5),
        (1, 3),
        0.25,
        ((0, 3, 7), (8, 12, 15), (5, 8, 12), (7, 10, 14)),
        "pad",
        (0,),
        3.5,
        "sub",
    ),
    "metal": Style(
        (150, 190),
        0.0,
        (0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2, 2.25, 2.5, 2.75, 3, 3.25, 3.5, 3.75),
        (1, 3),
        0,
        ((0, 7, 12), (3, 10, 15), (5, 12, 17), (1, 8, 13)),
        "distorted",
        (0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5),
        0.45,
        "root",
    ),
    "reggae": Style(
        (68, 84),
        0.0,
        (2,),
        (2,),
        0.5,
        ((0, 4, 7), (5, 9, 12), (7, 11, 14), (5, 9, 12)),
        "skank",
        (0.5, 1.5, 2.5, 3.5),
        0.15,
        "root",
    ),
    "jazz": Style(
        (110, 160),
        1 / 3,
        (0,),
        (),
        0,
        ((2, 5, 9, 12), (7, 11, 14, 17), (0, 4, 7, 11), (9, 13, 16, 19)),
        "organ",
        (0, 1.5, 2.5),
        0.9,
        "walking",
        ride=True,
    ),
}

EIGHTHS = (0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5)
SIXTEENTHS = tuple(i / 4 for i in range(16))
MAJOR_I_IV_V_I = ((0, 4, 7), (5, 9, 12), (7, 11, 14), (0, 4, 7))

# GTZAN's ten genres: tempo ranges overlap; pairs share drums, instruments and bass.
HARD_STYLES: dict[str, Style] = {
    "blues": Style((75, 110), 1 / 3, (0, 2), (1, 3), 0.5, STYLES["blues"].chords, "pluck", (0, 1.5, 2, 3.5), 0.6,
                   "walking"),
    "country": Style((95, 135), 0.1, (0, 2), (1, 3), 1, MAJOR_I_IV_V_I, "pluck", (0, 1, 2, 3), 0.5, "root"),
    "rock": Style((105, 145), 0.0, (0, 2, 2.5), (1, 3), 0.5, ((0, 7, 12), (10, 17, 22), (5, 12, 17), (0, 7, 12)),
                  "distorted", EIGHTHS, 0.45, "root"),
    "metal": Style((135, 190), 0.0, SIXTEENTHS, (1, 3), 0, STYLES["metal"].chords, "distorted", EIGHTHS, 0.45,
                   "root"),
    "pop": Style((95, 128), 0.0, (0, 1.5, 2), (1, 3), 0.5, ((0, 4, 7), (7, 11, 14), (9, 12, 16), (5, 9, 12)),
                 "square", (0, 1.5, 2, 3), 0.8, "octaves"),
    "disco": Style((112, 130), 0.0, (0, 1, 2, 3), (1, 3), 0.5, STYLES["disco"].chords, "square",
                   (0.5, 1.5, 2.5, 3.5), 0.25, "octaves", open_hats=True),
    "hiphop": Style((80, 100), 0.2, (0, 0.75, 2.5), (1, 3), 0.25, STYLES["hiphop"].chords, "pad", (0,), 3.5, "sub"),
    "reggae": Style((66, 90), 0.0, (2,), (2,), 0.5, STYLES["reggae"].chords, "skank", (0.5, 1.5, 2.5, 3.5), 0.15,
                    "root"),
    "jazz": Style((100, 170), 1 / 3, (0,), (), 0, STYLES["jazz"].chords, "organ", (0, 1.5, 2.5), 0.9, "walking",
                  ride=True),
    "classical": Style((60, 90), 0.0, (), (), 0, STYLES["classical"].chords, "strings", EIGHTHS, 1.2, "none",
                       arpeggio=True),
}  # fmt: skip
CATALOGUES: dict[str, dict[str, Style]] = {"easy": STYLES, "hard": HARD_STYLES}

# What a hard track may take whole from another genre, and how often each part is borrowed.
PARTS = {
    "drums": ("swing", "kicks", "snares", "hats", "open_hats", "ride"),
    "harmony": ("chords",),
    "comping": ("timbre", "chord_rhythm", "chord_length", "arpeggio"),
    "bass": ("bass",),
}
BORROW = 0.2


def synthesize(
    genre: str, *, seconds: float, rng: np.random.Generator, difficulty: str = DEFAULT_DIFFICULTY
) -> np.ndarray:
    """One mono track of ``genre`` (a genre of :data:`CATALOGUES` ``[difficulty]``) at 22,050 Hz,
    float32 in [-1, 1].

    Raises
    ------
    ParameterError
        An unknown difficulty, or a genre the difficulty does not have.
    """
    styles = genres(difficulty)
    if genre not in styles:
        raise ParameterError(f"no genre {genre!r} in the {difficulty} demo; known: {', '.join(styles)}")
    if difficulty == "easy":
        out = _render(styles[genre], seconds, rng)
        out += rng.normal(0, rng.uniform(0.001, 0.01), out.shape[0]).astype(np.float32)
        return _peak_normalised(out, rng.uniform(0.3, 0.9))
    style = _borrow_parts(styles[genre], list(styles.values()), rng)
    drums, chords, bass = rng.uniform(0.4, 1.2, 3)
    out = _low_pass(_render(style, seconds, rng, drums=drums, chords=chords, bass=bass), rng.uniform(0.25, 1.0))
    out *= _level_changes(out.shape[0], rng)
    noise = _low_pass(rng.standard_normal(out.shape[0]).astype(np.float32), rng.uniform(0.05, 1.0))
    snr_db = rng.uniform(10, 30)
    out += noise * (_rms(out) / _rms(noise) * 10 ** (-snr_db / 20))
    return _peak_normalised(out, rng.uniform(0.1, 0.9))


def genres(difficulty: str) -> dict[str, Style]:
    """The genres of a demo difficulty; :class:`ParameterError` names the known ones."""
    try:
        return CATALOGUES[difficulty]
    except KeyError:
        raise ParameterError(f"unknown demo difficulty {difficulty!r}; known: {', '.join(DIFFICULTIES)}") from None


def _render(
    style: Style, seconds: float, rng: np.random.Generator, *, drums: float = 1.0, chords: float = 1.0,
    bass: float = 1.0,
) -> np.ndarray:  # fmt: skip
    """Drums, chords and bass of ``style`` at these levels over a random tempo (in its range) and key."""
    n = int(seconds * SR)
    out = np.zeros(n + SR, dtype=np.float32)
    tempo = rng.uniform(*style.tempo)
    beat = 60.0 / tempo
    root = 40 + int(rng.integers(0, 12))
    brightness = rng.uniform(0.6, 1.4)
    bars = int(np.ceil(seconds / (4 * beat)))
    for bar in range(bars):
        start = bar * 4 * beat
        chord = style.chords[bar % len(style.chords)]
        for pos in style.kicks:
            _add(out, drums * _kick(rng), start + _swung(pos, style.swing) * beat)
        for pos in style.snares:
            _add(out, drums * _snare(rng), start + _swung(pos, style.swing) * beat)
        if style.hats:
            for pos in np.arange(0, 4, style.hats):
                hat = _hat(rng, open_=style.open_hats and pos % 1 == 0.5)
                _add(out, drums * hat, start + _swung(pos, style.swing) * beat)
        if style.ride:  # ride cymbal swing pattern
            for pos in (0, 1, 1 + 2 / 3, 2, 3, 3 + 2 / 3):
                _add(out, drums * _ride(rng), start + pos * beat)
        for pos in style.chord_rhythm:
            notes = (chord[int(pos * 2) % len(chord)] + 12,) if style.arpeggio else chord
            for semitone in notes:
                tone = _tone(_hz(root + 12 + semitone), style.chord_length * beat, style.timbre, brightness, rng)
                _add(out, tone * (chords * 0.5 / np.sqrt(len(notes))), start + _swung(pos, style.swing) * beat)
        _bass(out, style, root + chord[0] - 12, start, beat, rng, level=bass)
    return out[:n]


def _borrow_parts(style: Style, others: list[Style], rng: np.random.Generator) -> Style:
    """``style`` with each of its :data:`PARTS` replaced, with probability :data:`BORROW`, by another genre's."""
    changes = {}
    for fields in PARTS.values():
        if rng.random() < BORROW:
            donor = [other for other in others if other is not style][int(rng.integers(len(others) - 1))]
            changes.update({field: getattr(donor, field) for field in fields})
    return dataclasses.replace(style, **changes)


def _low_pass(signal: np.ndarray, coefficient: float) -> np.ndarray:
    """A one-pole low-pass (1: no filtering, near 0: dark): a recording's tone, or coloured noise."""
    return scipy.signal.lfilter([coefficient], [1.0, coefficient - 1.0], signal).astype(np.float32)


def _level_changes(n: int, rng: np.random.Generator) -> np.ndarray:
    """A gain that glides between random levels (-9 to +3 dB), one a second."""
    points_db = rng.uniform(-9, 3, int(n / SR) + 2)
    gain_db = np.interp(np.arange(n) / SR, np.arange(points_db.shape[0]), points_db)
    return (10 ** (gain_db / 20)).astype(np.float32)


def _rms(signal: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(signal, dtype=np.float64)))) or 1e-9


def _peak_normalised(out: np.ndarray, peak: float) -> np.ndarray:
    return (out / max(1e-6, np.abs(out).max()) * peak).astype(np.float32)


def make_demo_catalogue(
    directory: str | Path,
    *,
    difficulty: str = DEFAULT_DIFFICULTY,
    per_class: int = DEFAULT_PER_CLASS,
    seconds: float | None = None,
    seed: int = DEFAULT_SEED,
    broken: bool = True,
) -> list[Path]:
    """Write ``<directory>/genres/<genre>/<genre>.000NN.<ext>`` for every genre of ``difficulty``,
    plus broken files.

    ``seconds`` defaults to the difficulty's clip length (:data:`CLIP_SECONDS`). Returns the written
    paths. The same arguments always give the same audio.
    """
    styles = genres(difficulty)
    seconds = CLIP_SECONDS[difficulty] if seconds is None else seconds
    root = Path(directory) / "genres"
    written = []
    for g, genre in enumerate(styles):
        folder = root / genre
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            rng = np.random.default_rng([seed, g, i])
            mono = synthesize(genre, seconds=seconds, rng=rng, difficulty=difficulty)
            k = g * per_class + i
            ext, fmt, subtype = FORMATS[k % len(FORMATS)]
            rate = OUTPUT_RATES[k % len(OUTPUT_RATES)]
            audio = soxr.resample(mono, SR, rate) if rate != SR else mono
            if k % 2:  # stereo: a slightly delayed, quieter right channel
                audio = np.stack([audio, 0.8 * np.roll(audio, int(0.01 * rate))], axis=1)
            path = folder / f"{genre}.{i:05d}.{ext}"
            sf.write(path, np.clip(audio, -1, 1), rate, format=fmt, subtype=subtype)
            written.append(path)
    if broken:
        written += _write_broken(root, difficulty, per_class, seed)
    return written


def _write_broken(root: Path, difficulty: str, per_class: int, seed: int) -> list[Path]:
    names = list(genres(difficulty))
    truncated = root / names[0] / f"{names[0]}.{per_class:05d}.wav"
    audio = synthesize(names[0], seconds=5, rng=np.random.default_rng([seed, 99]), difficulty=difficulty)
    sf.write(truncated, audio, SR, subtype="PCM_16")
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 3])  # header still promises 5 s
    empty = root / names[1] / f"{names[1]}.{per_class:05d}.mp3"
    empty.write_bytes(b"")
    not_audio = root / names[2] / f"{names[2]}.{per_class:05d}.wav"
    not_audio.write_text("this is a text file with an audio name\n" * 20)
    return [truncated, empty, not_audio]


def _hz(midi: float) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def _swung(position: float, swing: float) -> float:
    whole, frac = divmod(position, 1.0)
    return whole + (0.5 + swing / 2 if swing and abs(frac - 0.5) < 1e-6 else frac)


def _add(out: np.ndarray, sound: np.ndarray, at_s: float) -> None:
    start = int(at_s * SR)
    if start >= out.shape[0]:
        return
    stop = min(out.shape[0], start + sound.shape[0])
    out[start:stop] += sound[: stop - start]


def _env(n: int, attack: float, decay: float) -> np.ndarray:
    t = np.arange(n) / SR
    return (np.minimum(1.0, t / max(attack, 1e-4)) * np.exp(-t / decay)).astype(np.float32)


def _kick(rng: np.random.Generator) -> np.ndarray:
    n = int(0.25 * SR)
    t = np.arange(n) / SR
    freq = 50 + 90 * np.exp(-t / 0.03)
    return (np.sin(2 * np.pi * np.cumsum(freq) / SR) * _env(n, 0.001, 0.12) * rng.uniform(0.8, 1.0)).astype(np.float32)


def _snare(rng: np.random.Generator) -> np.ndarray:
    n = int(0.2 * SR)
    t = np.arange(n) / SR
    body = np.sin(2 * np.pi * 185 * t) * _env(n, 0.001, 0.05)
    noise = np.diff(rng.normal(0, 1, n + 1)) * _env(n, 0.001, 0.07)
    return (0.5 * body + 0.35 * noise).astype(np.float32)


def _hat(rng: np.random.Generator, *, open_: bool = False) -> np.ndarray:
    n = int((0.25 if open_ else 0.05) * SR)
    noise = np.diff(np.diff(rng.normal(0, 1, n + 2)))
    return (0.12 * noise * _env(n, 0.0005, 0.08 if open_ else 0.015)).astype(np.float32)


def _ride(rng: np.random.Generator) -> np.ndarray:
    n = int(0.5 * SR)
    t = np.arange(n) / SR
    metal = sum(np.sin(2 * np.pi * f * t) for f in (3200, 4700, 5900, 7100)) / 4
    return (0.08 * (metal + 0.5 * np.diff(rng.normal(0, 1, n + 1))) * _env(n, 0.0005, 0.25)).astype(np.float32)


def _tone(freq: float, length_s: float, timbre: str, brightness: float, rng: np.random.Generator) -> np.ndarray:
    n = max(1, int(length_s * SR))
    t = np.arange(n) / SR
    vibrato = 1 + (0.004 * np.sin(2 * np.pi * 5.5 * t) if timbre in ("strings", "organ") else 0)
    phase = 2 * np.pi * freq * np.cumsum(vibrato) / SR
    if timbre == "strings":
        wave = sum(np.sin(k * phase) / k**1.5 for k in range(1, 6))
        env = _env(n, 0.25, length_s * 2)
    elif timbre == "organ":
        wave = sum(np.sin(k * phase) * a for k, a in ((1, 1), (2, 0.6), (3, 0.4), (4, 0.2), (6, 0.1)))
        env = _env(n, 0.01, length_s * 3)
    elif timbre == "square":
        wave = sum(np.sin(k * phase) / k for k in range(1, 12, 2))
        env = _env(n, 0.002, 0.12)
    elif timbre == "distorted":
        wave = np.tanh(6 * brightness * sum(np.sin(k * phase) / k for k in range(1, 8)))
        env = _env(n, 0.002, length_s * 1.5)
    elif timbre == "skank":
        wave = sum(np.sin(k * phase) / k for k in range(1, 10)) * (1 + 0.5 * rng.standard_normal())
        env = _env(n, 0.001, 0.04)
    elif timbre == "pad":
        wave = sum(np.sin(k * phase + rng.uniform(0, 6)) / k**2 for k in range(1, 5))
        env = _env(n, 0.4, length_s * 2)
    else:  # pluck: a bright saw that darkens as it decays
        wave = sum(np.sin(k * phase) / k * np.exp(-t * k * 2 / brightness) for k in range(1, 10))
        env = _env(n, 0.002, 0.3)
    return (wave * env).astype(np.float32)


def _bass(
    out: np.ndarray, style: Style, midi: int, start: float, beat: float, rng: np.random.Generator, *, level: float
) -> None:
    if style.bass == "none":
        return
    steps = {"walking": (0, 4, 7, 9), "octaves": (0, 12) * 4, "root": (0, 0, 0, 0), "sub": (0,)}[style.bass]
    length = 4 * beat / len(steps)
    for i, step in enumerate(steps):
        n = int(length * 0.9 * SR)
        t = np.arange(n) / SR
        freq = _hz(midi + step)
        wave = np.sin(2 * np.pi * freq * t) + (0.3 * np.sin(4 * np.pi * freq * t) if style.bass != "sub" else 0)
        decay = length * (3 if style.bass == "sub" else 0.8)
        _add(out, (level * 0.45 * wave * _env(n, 0.005, decay)).astype(np.float32), start + i * length)
