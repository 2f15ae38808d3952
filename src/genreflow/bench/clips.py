"""Synthetic inputs the benchmarks share: distinct MP3 catalogues and patches of synthetic music."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from genreflow.pipeline.demo import SR, STYLES, synthesize

UNIQUE_CLIPS = 64  # MP3 encoding costs ~0.7 s a clip; larger catalogues re-tag these


def make_clips(folder: Path, tracks: int, seconds: float, *, unique: int = UNIQUE_CLIPS) -> list[Path]:
    """``tracks`` distinct MP3 files: up to ``unique`` synthesized, the rest copies of them
    behind an ID3v2 tag holding their index, so every file has its own bytes (and content-hash id)
    while decoding exactly like its source."""
    folder.mkdir(parents=True, exist_ok=True)
    genres = list(STYLES)
    paths = []
    for i in range(tracks):
        path = folder / f"clip{i:05d}.mp3"
        if not path.exists():
            if i < unique:
                mono = synthesize(genres[i % len(genres)], seconds=seconds, rng=np.random.default_rng(i))
                audio = soxr.resample(mono, SR, 44100)
                sf.write(path, np.stack([audio, 0.9 * audio], axis=1), 44100, format="MP3")
            else:
                path.write_bytes(_id3_tag(i) + paths[i % unique].read_bytes())
        paths.append(path)
    return paths


def make_gtzan_wav(root: Path, tracks: int, seconds: float = 30.0, *, unique: int = UNIQUE_CLIPS) -> list[Path]:
    """``tracks`` GTZAN-format files (22,050 Hz mono 16-bit WAV in ``genres/<genre>/<genre>.000NN.wav``):
    the data most users start with. Up to ``unique`` are synthesized; the others copy one with its
    last sample changed, so every file has its own bytes (and content-hash id) and decodes alike."""
    genres = list(STYLES)
    paths: list[Path] = []
    for i in range(tracks):
        genre = genres[i % len(genres)]
        path = root / "genres" / genre / f"{genre}.{i // len(genres):05d}.wav"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            if i < unique:
                audio = synthesize(genre, seconds=seconds, rng=np.random.default_rng(i))
                sf.write(path, 0.5 * audio, SR, subtype="PCM_16")
            else:
                data = bytearray(paths[i % unique].read_bytes())
                data[-2:] = (i % 32768).to_bytes(2, "little")
                path.write_bytes(bytes(data))
        paths.append(path)
    return paths


def _id3_tag(index: int) -> bytes:
    """A minimal ID3v2.3 tag with one private frame; decoders skip it."""
    payload = b"genreflow-bench\x00" + index.to_bytes(4, "big")
    frame = b"PRIV" + len(payload).to_bytes(4, "big") + b"\x00\x00" + payload
    size = len(frame)
    syncsafe = bytes((size >> shift) & 0x7F for shift in (21, 14, 7, 0))
    return b"ID3\x03\x00\x00" + syncsafe + frame


def music_patches(n: int) -> dict[str, np.ndarray]:
    """musicnn96 and mel128 patches of synthetic music (real spectra, not noise)."""
    from genreflow.pipeline.features import MEL128, MUSICNN96
    from genreflow.pipeline.models.architectures import get_architecture

    frames = {
        "musicnn96": get_architecture("musicnn-msd").patch_frames[0],
        "mel128": get_architecture("cnn2").patch_frames[0],
    }
    out: dict[str, list[np.ndarray]] = {"musicnn96": [], "mel128": []}
    rng = np.random.default_rng(0)
    genres = list(STYLES)
    per_clip = min(10, -(-n // len(genres)))  # spread small requests over every genre
    clips = 0
    while min(len(values) for values in out.values()) < n:
        audio = synthesize(genres[clips % len(genres)], seconds=3.0 * per_clip + 0.5, rng=rng)
        clips += 1
        for fs in (MUSICNN96, MEL128):
            features = fs.compute(soxr.resample(audio, SR, fs.sample_rate).astype(np.float32), sr=fs.sample_rate)
            size = frames[fs.name]
            out[fs.name] += [features[:, s : s + size] for s in range(0, features.shape[1] - size + 1, size)][:per_clip]
    return {name: np.stack(values[:n]).astype(np.float32) for name, values in out.items()}


def synthetic_catalogue(n_tracks: int, *, stored: float = 0.99) -> tuple[Any, Any]:
    """A listing of ``n_tracks`` files under ``s3://catalogue`` and a manifest holding the first
    ``stored`` share of them as ``ok``: what a nightly run diffs before it decodes anything."""
    import pandas as pd

    from genreflow.pipeline.datasets import CATALOGUE_COLUMNS

    uris = [f"s3://catalogue/{i:08d}.mp3" for i in range(n_tracks)]
    catalogue = pd.DataFrame(
        {
            "uri": uris,
            "track_id": None,
            "dataset": "unlabelled",
            "label": None,
            "split": None,
            "fold": None,
            "size_bytes": 4_000_000,
            "source_version": "etag",
        }
    ).astype(CATALOGUE_COLUMNS)
    held = int(n_tracks * stored)
    manifest = catalogue.iloc[:held].assign(
        track_id=[f"sha256:{i:020x}" for i in range(held)],
        status="ok",
        error=None,
        feature_sets=[["mel128", "musicnn96"]] * held,
        ingested_at=pd.Timestamp.now(tz="UTC"),
    )
    return catalogue, manifest
