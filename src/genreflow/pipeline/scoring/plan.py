"""Which tracks a scoring run scores, which old rows it retires first, and which it cannot score."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..errors import ParameterError
from ..store import current_tracks
from ..store.scores import shard_of
from ..uri import filesystem
from .config import MODES
from .shard import ScoreChunk, TrackToScore

CHUNKS_PER_RUN = 8  # enough tasks to keep a few workers evenly busy
CHUNK_LIMITS = (64, 256)  # tracks per task: enough work to pay for a worker loading the model, retries stay cheap


@dataclass(frozen=True)
class ScorePlan:
    """Chunks to score, rows to retire beforehand (shard → track ids), and unscorable tracks."""

    chunks: list[ScoreChunk]
    retire: dict[int, list[str]]
    failures: pd.DataFrame  # track_id, uri, reason

    @property
    def n_tracks(self) -> int:
        return sum(len(c.tracks) for c in self.chunks)


def read_track_ids(uri: str, *, storage_options: Mapping[str, Any] | None = None) -> list[str]:
    """Track ids from a text file (local or remote): one per line, blank lines and ``#`` comments skipped.

    Raises
    ------
    ParameterError
        The file does not exist.
    """
    fs, path = filesystem(uri, storage_options)
    if not fs.isfile(path):
        raise ParameterError(f"tracks must be {' or '.join(MODES)} or a file of track ids; {uri} is none")
    lines = (line.split("#", 1)[0].strip() for line in fs.cat_file(path).decode("utf-8").splitlines())
    return [line for line in lines if line]


def plan_scoring(
    manifest: pd.DataFrame,
    scored: pd.DataFrame,
    *,
    feature_sets: Sequence[str],
    tracks: str | Sequence[str] = "new",
    chunk_size: int | None = None,
) -> ScorePlan:
    """Plan a run from the manifest and the model version's scored tracks.

    Parameters
    ----------
    manifest : DataFrame
        Every manifest row (the newest ok-or-failed row per track is its current state).
    scored : DataFrame
        ``track_id, shard, scored_at`` of the rows already written for this model version.
    feature_sets : sequence of str
        What the model reads; a track stored without them cannot be scored.
    tracks : {"new", "all"} or sequence of str
        ``new``: tracks never scored by this version, or re-ingested since; ``all``: every track;
        else these track ids (unknown ones become failures).
    chunk_size : int, optional
        Tracks per task (default: the run split into about :data:`CHUNKS_PER_RUN`, within
        :data:`CHUNK_LIMITS`). A chunk never spans two score files.

    Notes
    -----
    A track scored again lands in the shard of its current row; its old row in another shard
    (a changed track gets a new row) is retired, as are the rows of a track whose re-ingest failed
    and of an id no file has any more (a changed file under a content-hash id), so the files hold
    one row per current track.
    """
    if isinstance(tracks, str) and tracks not in MODES:
        raise ParameterError(f"tracks must be one of {MODES} or a list of track ids, got {tracks!r}")
    current = current_tracks(manifest)
    failures = []
    if isinstance(tracks, str):
        requested = current
    else:
        wanted = pd.Index(pd.unique(pd.Series(list(tracks), dtype=object)))
        requested = current[current["track_id"].isin(wanted)]
        unknown = wanted.difference(pd.Index(current["track_id"]))
        failures += [{"track_id": t, "uri": "", "reason": "not in the store's manifest"} for t in unknown]
    failed = requested[requested["status"] != "ok"]
    failures += [
        {"track_id": r.track_id, "uri": r.uri, "reason": f"ingest failed: {r.error}"} for r in failed.itertuples()
    ]
    ok = requested[requested["status"] == "ok"]
    complete = ok["feature_sets"].map(lambda names: set(feature_sets) <= set(names)).astype(bool)  # also when empty
    failures += [
        {"track_id": r.track_id, "uri": r.uri, "reason": f"stored without {'+'.join(feature_sets)}: ingest it with "
         f"--features {','.join(feature_sets)}"}
        for r in ok[~complete].itertuples()
    ]  # fmt: skip
    candidates = ok[complete]

    last_scored = scored.drop_duplicates("track_id", keep="last").set_index("track_id")
    if isinstance(tracks, str) and tracks == "new":
        when = candidates[["track_id"]].merge(
            last_scored[["scored_at"]], how="left", left_on="track_id", right_index=True
        )
        candidates = candidates[(when["scored_at"].isna() | (when["scored_at"] < candidates["ingested_at"])).to_numpy()]

    old_shard = last_scored["shard"]
    retire: dict[int, list[str]] = {}
    for track_id, row in zip(candidates["track_id"], candidates["row"], strict=True):
        if track_id in old_shard.index and old_shard[track_id] != shard_of(row):
            retire.setdefault(int(old_shard[track_id]), []).append(track_id)
    stale = set(failed["track_id"]) | (set(old_shard.index) - set(current["track_id"]))
    for track_id in sorted(stale & set(old_shard.index)):  # content that failed its re-ingest, or is gone
        retire.setdefault(int(old_shard[track_id]), []).append(track_id)

    by_shard: dict[int, list[TrackToScore]] = {}
    for r in candidates.sort_values("row").itertuples():
        by_shard.setdefault(shard_of(r.row), []).append(TrackToScore(r.track_id, r.uri, int(r.row), float(r.valid_s)))
    low, high = CHUNK_LIMITS
    size = chunk_size or min(high, max(low, -(-len(candidates) // CHUNKS_PER_RUN)))
    chunks = [
        ScoreChunk(shard, 0, tuple(members[start : start + size]))
        for shard, members in sorted(by_shard.items())
        for start in range(0, len(members), size)
    ]
    chunks = [dataclasses.replace(chunk, index=i) for i, chunk in enumerate(chunks)]
    return ScorePlan(chunks, retire, pd.DataFrame(failures, columns=["track_id", "uri", "reason"]))
