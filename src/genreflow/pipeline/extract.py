"""One shard's work: read → hash → decode → compute every feature set → write its own rows.

The shard function is the serial routine Dask workers run side by side; it returns manifest rows
(never feature arrays) and keeps a receipt in the store so a crashed run loses nothing.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import io
import os
import resource
import stat
import time
from collections import deque
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO

import numpy as np

from .audio import ClipWindow, DecodedClip, decode_clip, resample
from .errors import DecodeError, GenreflowError
from .features import FeatureSet
from .store import FeatureWriter, RowRange, StoreLayout
from .store.manifest import rows_to_table
from .store.parquet import write_parquet_atomic
from .uri import filesystem, is_remote

DECODE_AHEAD = 2  # decoding (~60 % of a track's CPU) needs two threads to keep up with one compute thread
IN_MEMORY_LIMIT = 256 * 2**20  # larger files are hashed by streaming and decoded by seeking


@dataclass(frozen=True)
class TrackRef:
    """A catalogue row as a shard carries it (small, picklable)."""

    uri: str
    dataset: str
    size_bytes: int
    source_version: str
    track_id: str | None = None
    label: str | None = None
    split: str | None = None
    fold: int | None = None


@dataclass(frozen=True)
class Shard:
    """Tracks of one task and the rows they own: track ``i`` uses rows ``row_start + i·views ...``."""

    run_id: str
    index: int
    row_start: int
    rows_per_track: int
    tracks: tuple[TrackRef, ...]

    @property
    def rows(self) -> RowRange:
        return RowRange(self.row_start, self.row_start + len(self.tracks) * self.rows_per_track)


@dataclass(frozen=True)
class ExtractionSpec:
    """What every shard of a run computes."""

    feature_sets: tuple[FeatureSet, ...]
    window: ClipWindow = field(default_factory=ClipWindow)
    channel_views: tuple[str, ...] = ("mid",)


@dataclass
class ShardResult:
    """What a shard task returns: its manifest rows and how it ran (for benchmarks and reports)."""

    index: int
    rows: list[dict[str, Any]]
    seconds: float
    pid: int
    peak_rss_bytes: int


def extract_and_store_shard(
    shard: Shard, spec: ExtractionSpec, writer: FeatureWriter, *, storage_options: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Process every track of ``shard``; a track that fails becomes a ``failed`` row, never an exception.

    Reading and decoding the next track overlaps computing the current one (libsndfile, soxr and
    numpy's FFT release the GIL), so one worker keeps two cores busy.

    Returns
    -------
    list of dict
        One manifest row per track, in :data:`~genreflow.pipeline.store.MANIFEST_SCHEMA` columns.
    """
    rows = []
    for position, (track, loaded) in enumerate(_prefetch(shard.tracks, spec.window, storage_options)):
        row = shard.row_start + position * shard.rows_per_track
        content_hash, clip, error = loaded
        if clip is not None:
            try:
                for fs, values in compute_features(clip, spec).items():
                    writer.write(fs, row, values)
            except GenreflowError as compute_error:
                clip, error = None, f"features: {compute_error}"
        rows.append(_manifest_row(shard, track, spec, row, content_hash, clip, error))
    writer.flush()
    return rows


def compute_features(clip: DecodedClip, spec: ExtractionSpec) -> dict[str, np.ndarray]:
    """Every feature set of ``spec`` for every channel view of ``clip``, resampling once per rate.

    Returns
    -------
    dict
        Feature set name → float32 [shape=(n_views, n_bins, n_frames)].
    """
    resampled: dict[tuple[str, int], np.ndarray] = {}
    out = {}
    for fs in spec.feature_sets:
        size = round(spec.window.seconds * fs.sample_rate)
        views = []
        for view in spec.channel_views:
            key = (view, fs.sample_rate)
            if key not in resampled:
                signal = resample(clip.view(view), orig_sr=clip.sample_rate, target_sr=fs.sample_rate)
                resampled[key] = np.ascontiguousarray(signal, dtype=np.float32)
            views.append(fs.compute_window(resampled[key], sr=fs.sample_rate, size=size))
        out[fs.name] = np.stack(views)
    return out


def run_shard(shard: Shard, spec: ExtractionSpec, layout: StoreLayout) -> ShardResult:
    """The unit a task runs: extract the shard, then keep its receipt in ``runs/<run_id>/``."""
    started = time.perf_counter()
    writer = FeatureWriter(layout, shard.rows)
    rows = extract_and_store_shard(shard, spec, writer, storage_options=layout.storage_options)
    write_receipt(layout, shard, rows)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return ShardResult(shard.index, rows, time.perf_counter() - started, os.getpid(), peak)


def write_receipt(layout: StoreLayout, shard: Shard, rows: list[dict[str, Any]]) -> None:
    """Store a shard's rows under the run, for the flow (or a later recovery) to commit."""
    write_parquet_atomic(
        rows_to_table(rows), layout.receipt(shard.run_id, shard.index), storage_options=layout.storage_options
    )


def _prefetch(
    tracks: tuple[TrackRef, ...], window: ClipWindow, storage_options: Mapping[str, Any] | None
) -> Iterator[tuple[TrackRef, tuple[str | None, DecodedClip | None, str | None]]]:
    """Yield each track with its loaded clip, keeping ``DECODE_AHEAD`` tracks loading ahead in threads."""
    load = functools.partial(load_track, window=window, storage_options=storage_options)
    with ThreadPoolExecutor(max_workers=DECODE_AHEAD, thread_name_prefix="genreflow-decode") as pool:
        pending = deque(pool.submit(load, track) for track in tracks[:DECODE_AHEAD])
        for position, track in enumerate(tracks):
            current = pending.popleft().result()
            if position + DECODE_AHEAD < len(tracks):
                pending.append(pool.submit(load, tracks[position + DECODE_AHEAD]))
            yield track, current


def load_track(
    track: TrackRef, *, window: ClipWindow, storage_options: Mapping[str, Any] | None = None
) -> tuple[str | None, DecodedClip | None, str | None]:
    """Read, hash and decode one track: ``(content_hash, clip, None)`` or ``(hash?, None, reason)``.

    Any failure of a third-party decoder on a malformed file is kept as the reason, with its type,
    because a corrupt file must cost one row, never the run.
    """
    if not is_remote(track.uri) and (problem := _local_file_problem(track.uri)):
        return None, None, problem  # never open a named pipe: that waits for a writer forever
    try:
        fs, path = filesystem(track.uri, storage_options)
        content_hash, source, size = _open_hashed(fs, path, listed_size=track.size_bytes)
    except FileNotFoundError:
        return None, None, _missing(track.uri)
    except OSError as error:
        return None, None, _os_reason(error)
    try:
        with source:
            if size == 0:
                return None, None, "empty file (0 bytes)"
            return content_hash, decode_clip(source, window=window), None
    except DecodeError as error:
        return content_hash, None, str(error)
    except Exception as error:  # a decoder's own failure on a malformed file: recorded, not swallowed
        return content_hash, None, f"undecodable ({type(error).__name__}: {error})"


_NOT_REGULAR = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a device"),
)


def _local_file_problem(path: str) -> str | None:
    """Why the local ``path`` cannot be read as a file now (gone, a broken link or a link loop, a pipe,
    a folder), or None; one ``stat``, so a pipe is never opened."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return _missing(path)
    except OSError as error:
        return _os_reason(error)
    if stat.S_ISDIR(mode):
        return "a folder, not a file"
    for test, kind in _NOT_REGULAR:
        if test(mode):
            return f"not a regular file: {kind}"
    return None


def _missing(uri: str) -> str:
    if not is_remote(uri) and os.path.islink(uri):
        return f"broken symbolic link: its target {os.readlink(uri)} does not exist"
    return "file not found (removed after it was listed?)"


def _os_reason(error: OSError) -> str:
    """An operating-system error as a reason, without the errno and path (the row has the path)."""
    if error.errno == errno.ELOOP:
        return "symbolic link loop: the link leads back to itself"
    if error.errno == errno.EACCES:
        return "cannot read: permission denied"
    return f"cannot read: {(error.strerror or type(error).__name__).lower()}"


def _open_hashed(fs: Any, path: str, *, listed_size: int) -> tuple[str, BinaryIO, int]:
    """Hash the file's bytes and return something to decode them from, plus the size actually read.

    The listing's size only picks the strategy (no extra stat per track): small files are read once
    into memory; larger ones are hashed by streaming and decoded by seeking in a second handle.
    """
    digest = hashlib.sha256()
    if listed_size <= IN_MEMORY_LIMIT:
        data = fs.cat_file(path)
        digest.update(data)
        return digest.hexdigest(), io.BytesIO(data), len(data)
    size = 0
    with fs.open(path, "rb") as handle:
        for block in iter(lambda: handle.read(8 * 2**20), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), fs.open(path, "rb"), size


def _manifest_row(
    shard: Shard,
    track: TrackRef,
    spec: ExtractionSpec,
    row: int,
    content_hash: str | None,
    clip: DecodedClip | None,
    error: str | None,
) -> dict[str, Any]:
    track_id = track.track_id or (f"sha256:{content_hash[:20]}" if content_hash else None)
    ok = clip is not None
    return {
        "track_id": track_id,
        "uri": track.uri,
        "dataset": track.dataset,
        "label": track.label,
        "split": track.split,
        "fold": track.fold,
        "duration_s": clip.duration_s if ok else None,
        "sample_rate": clip.sample_rate if ok else None,
        "channels": clip.channels if ok else None,
        "size_bytes": track.size_bytes,
        "source_version": track.source_version,
        "content_hash": content_hash,
        "row": row if ok else None,
        "window_start_s": clip.window_start_s if ok else None,
        "valid_s": min(clip.valid_s, spec.window.seconds) if ok else None,
        "status": "ok" if ok else "failed",
        "error": None if ok else error,
        "ingested_at": datetime.now(UTC),
        "run_id": shard.run_id,
        "feature_sets": [fs.name for fs in spec.feature_sets] if ok else [],
    }
