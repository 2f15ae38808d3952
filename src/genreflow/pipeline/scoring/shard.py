"""Scoring a chunk of tracks (on a worker) and writing one shard's file (by the flow).

Chunks are sized for load balance; files are fixed row ranges. Workers return per-track outputs
(probabilities or an embedding: a few hundred floats a track) and the flow, the only writer,
rewrites a shard's file once all its chunks are back, so no two processes ever write one file.
The output decides only the table a shard's file holds (:data:`WRITTEN_AT` names its time column).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from ..errors import GenreflowError
from ..patches import PatchReader
from ..registry import ModelRef
from ..store import StoreLayout
from ..store.embeddings import WRITTEN_AT as WRITTEN_EMBEDDED
from ..store.embeddings import embeddings_schema, embeddings_table
from ..store.scores import ScoresLayout, rewrite_part, scores_schema, scores_table
from ..uri import filesystem
from .config import OUTPUTS, ScoreSpec
from .scorers import ModelInfo, Scorer
from .windows import TrackAverager, audio_patches


@dataclass(frozen=True)
class TrackToScore:
    track_id: str
    uri: str
    row: int
    valid_s: float


@dataclass(frozen=True)
class ScoreChunk:
    """Tracks one task scores, all from the row range of score file ``shard``."""

    shard: int
    index: int
    tracks: tuple[TrackToScore, ...]


@dataclass
class ChunkScores:
    """What a chunk task returns: per-track mean outputs and failures with reasons."""

    shard: int
    index: int
    track_ids: list[str]
    uris: list[str]
    n_windows: list[int]
    outputs: np.ndarray  # float32 [shape=(n_tracks, width)]: probabilities, or embeddings
    failures: list[dict[str, str]]
    n_patches: int
    seconds: float
    pid: int = field(default_factory=os.getpid)


def score_chunk(chunk: ScoreChunk, spec: ScoreSpec, layout: StoreLayout, scorer: Scorer) -> ChunkScores:
    """Mean outputs of every track of ``chunk``; a track that fails is reported, not raised."""
    started = time.perf_counter()
    info = scorer.info
    averager = TrackAverager(scorer.predict, batch_size=spec.batch_size)
    reader = None if spec.full_track else PatchReader(layout, info, hop=info.patch_hop)
    failures = []
    for track in chunk.tracks:
        try:
            if reader is None:
                fs, path = filesystem(track.uri, layout.storage_options)
                with fs.open(path, "rb") as source:
                    for patches in audio_patches(source, info.inputs, info.patch_frames, hop_s=spec.hop_s):
                        averager.add(track.track_id, patches)
            else:
                patches = reader.all_patches(track.row, track.valid_s)
                if not all(np.isfinite(p).all() for p in patches):
                    raise GenreflowError(f"row {track.row} holds missing or non-finite features")
                averager.add(track.track_id, patches)
        except FileNotFoundError:
            averager.discard(track.track_id)
            failures.append(_failure(track, "audio not found (moved or deleted since ingest)"))
        except (GenreflowError, OSError) as error:
            averager.discard(track.track_id)
            failures.append(_failure(track, str(error)))
    means = averager.means()
    scored = [t for t in chunk.tracks if t.track_id in means]
    return ChunkScores(
        shard=chunk.shard,
        index=chunk.index,
        track_ids=[t.track_id for t in scored],
        uris=[t.uri for t in scored],
        n_windows=[averager.counts[t.track_id] for t in scored],
        outputs=np.stack([means[t.track_id] for t in scored]) if scored else np.zeros((0, scorer.width), np.float32),
        failures=failures,
        n_patches=averager.n_patches,
        seconds=time.perf_counter() - started,
    )


WRITTEN_AT = {"probabilities": "scored_at", "embedding": WRITTEN_EMBEDDED}  # each output's time column


def write_shard(
    scores: ScoresLayout,
    info: ModelInfo,
    shard: int,
    chunks: Sequence[ChunkScores],
    *,
    scored_at: datetime,
    output: str = OUTPUTS[0],
) -> int:
    """Replace the rows of the tracks in ``chunks`` in file ``shard`` (``scores`` is the root of
    ``output``: scores or embeddings); returns the rows written."""
    rows = {
        "track_ids": [t for c in chunks for t in c.track_ids],
        "uris": [u for c in chunks for u in c.uris],
        "feature_set": info.feature_set,
        "n_windows": [n for c in chunks for n in c.n_windows],
    }
    values = np.concatenate([c.outputs for c in chunks])
    if output == "embedding":
        schema = embeddings_schema(info.ref.name, info.ref.version, values.shape[1])
        table = embeddings_table(schema, embedded_at=scored_at, vectors=values, **rows)
    else:
        schema = scores_schema(info.ref.name, info.ref.version, info.labels)
        table = scores_table(schema, scored_at=scored_at, probabilities=values, **rows)
    if table.num_rows:
        rewrite_part(scores, info.ref.name, info.ref.version, shard, schema=schema, new_rows=table)
    return table.num_rows


def retire_rows(scores: ScoresLayout, ref: ModelRef, retire: Mapping[int, Sequence[str]]) -> int:
    """Drop the rows of tracks that moved shard or no longer score (shard → track ids) before any file
    gets new rows; returns the rows dropped."""
    for shard, track_ids in sorted(retire.items()):
        rewrite_part(scores, ref.name, ref.version, shard, drop=list(track_ids))
    return sum(len(ids) for ids in retire.values())


def _failure(track: TrackToScore, reason: str) -> dict[str, str]:
    return {"track_id": track.track_id, "uri": track.uri, "reason": reason}
