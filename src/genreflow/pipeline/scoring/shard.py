"""One shard's scoring: read or decode its tracks' patches → average per track → rewrite its file."""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from ..errors import GenreflowError
from ..store import StoreLayout
from ..store.scores import ScoresLayout, rewrite_part, scores_schema, scores_table
from ..training.data import PatchReader
from ..uri import filesystem
from .scorers import Scorer
from .windows import TrackAverager, audio_patches


@dataclass(frozen=True)
class TrackToScore:
    track_id: str
    uri: str
    row: int
    valid_s: float


@dataclass(frozen=True)
class ScoreShard:
    """The tracks of one score file (a fixed range of feature-store rows)."""

    index: int
    tracks: tuple[TrackToScore, ...]


@dataclass(frozen=True)
class ScoreSpec:
    """What every shard of a run does.

    ``hop_s`` is the full-track window hop (default half a patch); ``threshold`` the top-label
    probability under which a track counts as low-confidence in the run's report.
    """

    scores: ScoresLayout
    full_track: bool = False
    hop_s: float | None = None
    batch_size: int = 64
    threshold: float = 0.5


@dataclass
class ShardOutcome:
    """What a shard task returns: counts for the report, failures with reasons (never arrays)."""

    index: int
    scored: int
    n_patches: int
    failures: list[dict[str, str]]
    top_labels: dict[str, int]
    below_threshold: int
    seconds: float
    pid: int = field(default_factory=os.getpid)


def score_shard(shard: ScoreShard, spec: ScoreSpec, layout: StoreLayout, scorer: Scorer) -> ShardOutcome:
    """Score every track of ``shard`` and replace its file; a track that fails is reported, not raised.

    Its old rows for the tracks scored are replaced; other rows of the file are kept.
    """
    started = time.perf_counter()
    info = scorer.info
    averager = TrackAverager(scorer.predict, batch_size=spec.batch_size)
    reader = None if spec.full_track else PatchReader(layout, info)
    failures = []
    for track in shard.tracks:
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
    scored = [t for t in shard.tracks if t.track_id in means]
    probabilities = np.stack([means[t.track_id] for t in scored]) if scored else np.zeros((0, len(info.labels)))
    schema = scores_schema(info.ref.name, info.ref.version, info.labels)
    table = scores_table(
        schema,
        track_ids=[t.track_id for t in scored],
        uris=[t.uri for t in scored],
        feature_set=info.feature_set,
        scored_at=datetime.now(UTC),
        n_windows=[averager.counts[t.track_id] for t in scored],
        probabilities=probabilities,
    )
    if scored:
        rewrite_part(spec.scores, info.ref.name, info.ref.version, shard.index, schema=schema, new_rows=table)
    return ShardOutcome(
        index=shard.index,
        scored=len(scored),
        n_patches=averager.n_patches,
        failures=failures,
        top_labels=dict(Counter(table["label_top"].to_pylist())),
        below_threshold=int((probabilities.max(axis=1, initial=0.0) < spec.threshold).sum()),
        seconds=time.perf_counter() - started,
    )


def _failure(track: TrackToScore, reason: str) -> dict[str, Any]:
    return {"track_id": track.track_id, "uri": track.uri, "reason": reason}
