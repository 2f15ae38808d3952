"""Ingest bookkeeping around the shard work: what to do, how to split it, how to commit it.

The CLI may call :func:`preview_ingest` first (read-only). The flow calls these in order:
:func:`recover_interrupted_runs`, :func:`select_work`, then for each
of :func:`plan_batches`: :func:`plan_shards`, :func:`record_allocation`, (shards run elsewhere),
:func:`commit_run`, :meth:`RunTally.add`. Only this code writes the manifest and the ``track_id``
array, so each has exactly one writer.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from .audio import ClipWindow
from .datasets import DEFAULT_WINDOW_S as DATASET_WINDOW_S
from .errors import CatalogueError, ParameterError, StoreError
from .extract import Shard, ShardResult, TrackRef
from .features import FeatureSet
from .ingest_config import DEFAULT_WINDOW_S
from .store import (
    FeatureStore,
    StoreLayout,
    holds,
    latest_rows,
    read_manifest,
    read_parquet_dir,
    store_attrs,
    write_manifest_part,
)
from .store.manifest import MANIFEST_SCHEMA
from .uri import filesystem, is_remote


def new_run_id() -> str:
    """A sortable, unique run id: UTC time plus random suffix (``20261122T021500Z-3f9a1c``)."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def window_seconds(layout: StoreLayout, requested: float | None, dataset: str) -> float:
    """The clip window of a run: the requested one, else the existing store's, else the dataset's default."""
    if requested is not None:
        return float(requested)
    try:
        return float(store_attrs(layout)["window_s"])
    except (StoreError, KeyError):  # no store yet, or one made before settings were recorded
        return DATASET_WINDOW_S.get(dataset, DEFAULT_WINDOW_S)


def detected_dataset(catalogue: pd.DataFrame, requested: str) -> str:
    """The layout the listing recognised (``auto`` resolved), or the requested one for an empty listing."""
    return str(catalogue["dataset"].iloc[0]) if len(catalogue) else requested


@dataclass(frozen=True)
class IngestPreview:
    """What an ingest run would do, read without the lease: ``to_decode`` tracks (None when only the
    flow can tell: the store is new or has other settings, or a run's receipts wait to be committed),
    and whether the run would change nothing at all."""

    to_decode: int | None
    up_to_date: bool


def preview_ingest(
    layout: StoreLayout,
    catalogue: pd.DataFrame,
    *,
    source: str,
    dataset: str,
    feature_sets: Sequence[FeatureSet],
    window_s: float | None,
    min_duration_s: float,
    channel_views: Sequence[str],
    retry_failed: bool,
) -> IngestPreview:
    """What an ingest run of ``catalogue`` (listed from ``source``) would do.

    Read-only and without the lease, so a night with nothing new costs a listing and a manifest read
    instead of a flow run, and a run with work can start its workers early: the store exists with
    these settings, no run's receipts wait to be committed (another run may be writing), then the
    diff. The flow decides again under the lease (and reports any error in the request).
    """
    window = ClipWindow(
        seconds=window_seconds(layout, window_s, detected_dataset(catalogue, dataset)), min_seconds=min_duration_s
    )
    if not holds(layout, feature_sets, window=window, channel_views=channel_views) or _run_dirs(layout):
        return IngestPreview(to_decode=None, up_to_date=False)
    manifest = read_manifest(layout)
    work = len(select_work(catalogue, manifest, feature_sets=feature_sets, retry_failed=retry_failed))
    gone = work == 0 and vanished(catalogue, manifest, source=source, run_id="", allow_empty_source=True)
    return IngestPreview(to_decode=work, up_to_date=work == 0 and not gone)


def select_work(
    catalogue: pd.DataFrame,
    manifest: pd.DataFrame,
    *,
    feature_sets: Sequence[FeatureSet],
    retry_failed: bool = False,
) -> pd.DataFrame:
    """Catalogue rows that need decoding, with a ``reason`` column (new, changed, features, retry).

    A file is done when its newest manifest row has the same size and version (mtime or ETag) and
    either succeeded with every requested feature set, was skipped as a duplicate, or failed (a
    failure is retried only with ``retry_failed``, since an unchanged corrupt file fails again).
    """
    wanted = {fs.name for fs in feature_sets}
    files = latest_rows(manifest, by="uri")
    last = files[["uri", "size_bytes", "source_version", "status", "feature_sets", "error"]]
    merged = catalogue.merge(last, on="uri", how="left", suffixes=("", "_last"), indicator=True)
    seen = (merged.pop("_merge") == "both").to_numpy()
    same_file = _equal(merged["size_bytes"], merged["size_bytes_last"]) & _equal(
        merged["source_version"], merged["source_version_last"]
    )
    status = merged["status"].fillna("").to_numpy(dtype=object)
    lacks_sets = merged["feature_sets"].map(
        lambda sets: isinstance(sets, list | np.ndarray) and not wanted <= set(sets)
    )
    orphaned = (status == "skipped") & ~_owner_stays(merged, files, catalogue, same_file)
    reason = np.select(
        [
            ~seen,
            status == "removed",  # back after it vanished: its old rows no longer count
            orphaned,  # a duplicate whose original vanished or changed: this copy holds the track now
            ~same_file,
            (status == "failed") & retry_failed,
            (status == "ok") & lacks_sets.to_numpy(dtype=bool),
        ],
        ["new", "restored", "restored", "changed", "retry", "features"],
        default="",
    )
    work = catalogue.assign(reason=reason)
    return work[work["reason"] != ""].reset_index(drop=True)


def _owner_stays(
    merged: pd.DataFrame, files: pd.DataFrame, catalogue: pd.DataFrame, same_file: np.ndarray
) -> np.ndarray:
    """For rows whose newest state is ``skipped: duplicate of <owner>``: whether the owner is still
    listed, unchanged, and still holds that content (its newest row ``ok``)."""
    owners = merged["error"].fillna("").str.removeprefix("duplicate of ")
    held = files[files["status"] == "ok"]["uri"]
    listed = catalogue.assign(unchanged=same_file)
    unchanged = set(listed.loc[listed["unchanged"], "uri"])
    return (owners.isin(held) & owners.isin(unchanged)).to_numpy(dtype=bool)


def vanished(
    catalogue: pd.DataFrame, manifest: pd.DataFrame, *, source: str, run_id: str, allow_empty_source: bool = False
) -> list[dict[str, Any]]:
    """``removed`` manifest rows for the files under ``source`` that the store holds and the listing no
    longer has, so readers stop seeing them (their score rows are dropped by the next scoring run).

    Only files under ``source`` (a folder or prefix, as listed) are considered: a store fed from
    several sources keeps what the others brought.

    Raises
    ------
    CatalogueError
        The source lists no files while the store holds files from it: an outage (an unmounted
        disk, a wrong prefix, expired credentials) looks the same as "everything was deleted",
        so it is refused unless ``allow_empty_source``.
    """
    if manifest.empty:
        return []
    files = latest_rows(manifest, by="uri")
    prefix = source.rstrip("/") + "/"
    held = files[(files["status"] != "removed") & files["uri"].str.startswith(prefix)]
    gone = held[~held["uri"].isin(catalogue["uri"])]
    if len(catalogue) == 0 and len(held) and not allow_empty_source:
        raise CatalogueError(
            f"{source}: lists no audio files, but the store holds {len(held)} from it; refusing to retire them "
            "all (an unmounted disk or a wrong prefix looks the same); pass --allow-empty-source if they are gone"
        )
    now = datetime.now(UTC)
    columns = ("track_id", "uri", "dataset", "label", "split", "fold", "size_bytes", "source_version", "content_hash")
    return [
        {**{name: _plain(record.get(name)) for name in columns}, "status": "removed", "row": None,
         "error": "no longer in the source", "ingested_at": now, "run_id": run_id, "feature_sets": []}
        for record in gone.to_dict("records")
    ]  # fmt: skip


def _plain(value: Any) -> Any:
    """A manifest value as a plain Python object (pandas' NA as None)."""
    return None if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)) else value


def _equal(left: pd.Series, right: pd.Series) -> np.ndarray:
    """Element-wise equality as plain booleans (missing on either side counts as different)."""
    return (left == right).fillna(False).to_numpy(dtype=bool)


def plan_batches(work: pd.DataFrame, *, run_id: str, batch_tracks: int) -> Iterator[tuple[str, pd.DataFrame]]:
    """The work in batches of ``batch_tracks`` tracks, each with the run id it is committed under.

    A batch is allocated, decoded and committed before the next is planned, so the rows a run holds
    in memory are one batch's, and a crash loses at most the batch in flight (its finished shards'
    receipts are committed by the next run). One batch keeps the run's own id; several are
    ``<run id>-b00000``, ``-b00001``, ... (sortable, like run ids).
    """
    if batch_tracks < 1:
        raise ParameterError(f"batch-tracks must be at least 1, got {batch_tracks}")
    starts = range(0, len(work), batch_tracks)
    for index, first in enumerate(starts):
        batch_id = run_id if len(starts) == 1 else f"{run_id}-b{index:05d}"
        yield batch_id, work.iloc[first : first + batch_tracks].reset_index(drop=True)


def record_allocation(layout: StoreLayout, shards: Sequence[Shard]) -> None:
    """Note the rows each shard of a batch owns before any shard runs, so that a recovery can tell
    how many rows the shards that never finished leave unused (they hold no track)."""
    if not shards:
        return
    plan = {"shards": [[s.index, s.row_start, s.rows_per_track * len(s.tracks)] for s in shards]}
    fs, path = filesystem(layout.allocation(shards[0].run_id), layout.storage_options)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    fs.pipe_file(path, json.dumps(plan).encode())


def _unused_rows(layout: StoreLayout, run_id: str) -> int:
    """Rows allocated to shards of an interrupted run that left no receipt (0 without a record)."""
    fs, path = filesystem(layout.allocation(run_id), layout.storage_options)
    if not fs.exists(path):
        return 0
    plan = json.loads(fs.cat_file(path))
    return sum(
        rows for index, _, rows in plan["shards"]
        if not fs.exists(filesystem(layout.receipt(run_id, index), layout.storage_options)[1])
    )  # fmt: skip


def plan_shards(
    work: pd.DataFrame, *, run_id: str, row_start: int, rows_per_track: int, shard_size: int
) -> list[Shard]:
    """Cut the work into shards of ``shard_size`` tracks owning consecutive, disjoint rows."""
    if shard_size < 1:
        raise ParameterError(f"shard_size must be at least 1, got {shard_size}")
    refs = [_track_ref(row) for row in work.to_dict("records")]
    shards = []
    for index, first in enumerate(range(0, len(refs), shard_size)):
        tracks = tuple(refs[first : first + shard_size])
        shards.append(Shard(run_id, index, row_start + first * rows_per_track, rows_per_track, tracks))
    return shards


def commit_run(
    layout: StoreLayout, store: FeatureStore, run_id: str, rows: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Make a run's rows durable: mark duplicates, append the manifest part, record track ids.

    Folder catalogues identify tracks by content hash; the same audio under a second name is kept
    once and the other row says ``skipped: duplicate of <uri>``. The track ids are recorded after the
    part and the receipts removed last, so a crash anywhere here is repaired by
    :func:`recover_interrupted_runs` (a part without its track ids gets them then).
    """
    manifest = read_manifest(layout)
    committed = mark_duplicates(rows, manifest)
    if committed:
        write_manifest_part(layout, run_id, committed)
        _record_track_ids(store, committed, manifest)
    _clear_run(layout, run_id)
    return committed


def _record_track_ids(store: FeatureStore, rows: Sequence[dict[str, Any]], manifest: pd.DataFrame) -> None:
    """The ``track_id`` of each ``ok`` row's store row, and an empty one for the rows that earlier
    versions of these files held (changed, failed now, retired): the array names each track's live
    row only, never a stale copy. Idempotent: recovery writes them again (``manifest`` may then
    already hold ``rows``)."""
    ok = [r for r in rows if r["status"] == "ok"]
    live = {int(r["row"]) for r in ok}
    uris = {r["uri"] for r in rows}
    earlier = manifest[manifest["uri"].isin(uris) & (manifest["status"] == "ok") & manifest["row"].notna()]
    stale = sorted({int(row) for row in earlier["row"]} - live)
    store.record_track_ids([r["row"] for r in ok] + stale, [r["track_id"] for r in ok] + [""] * len(stale))


def mark_duplicates(rows: Sequence[dict[str, Any]], manifest: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows with a content-hash id already live under another URI become ``skipped``.

    ``removed`` rows free their id first (the caller puts them first), and a file re-ingested with new
    content frees its old id: a file renamed in its source keeps its track under the new name, and
    the copy of an edited or deleted original takes its track over, instead of being skipped as a
    duplicate of content no file holds any more. Of a symbolic link and its target, the real file
    keeps the track, whether they arrive together or the link was committed in an earlier run (its
    row then becomes ``skipped`` in this commit, and its feature row is freed). A duplicate labelled
    otherwise than the file that keeps the track carries a :class:`LabelConflict` as ``label_conflict``
    (not stored: the run reports it).
    """
    live: dict[str, tuple[str, str | None]] = {}  # track id -> the URI holding it, and its label
    current = pd.DataFrame(columns=manifest.columns)
    if len(manifest):
        current = latest_rows(manifest, by="uri")
        current = current[current["status"] == "ok"]
        labels = [None if pd.isna(label) else label for label in current["label"]]
        live = dict(zip(current["track_id"], zip(current["uri"], labels, strict=True), strict=True))
    arriving = {row["uri"]: row["track_id"] for row in rows if row["status"] == "ok"}
    live = {track: held for track, held in live.items() if arriving.get(held[0], track) == track}  # edited: new id
    out = []
    for row in sorted(rows, key=lambda r: (r["status"] != "removed", _is_link(r["uri"]))):  # stable
        row = dict(row)
        if row["status"] == "removed" and live.get(row["track_id"], ("",))[0] == row["uri"]:
            del live[row["track_id"]]
        owner = live.get(row["track_id"]) if row["status"] == "ok" else None
        if owner is not None and owner[0] not in arriving and _is_link(owner[0]) and not _is_link(row["uri"]):
            link = current.loc[current["uri"] == owner[0]].iloc[0]
            stored = {name: None if pd.isna(value) else value for name, value in link.items() if name in row}
            out.append(_duplicate(stored | {"run_id": row["run_id"], "ingested_at": row["ingested_at"]}, row))
            owner = None  # the real file takes the track over from a link committed earlier
        if owner is not None and owner[0] != row["uri"]:
            row = _duplicate(row, {"uri": owner[0], "label": owner[1]})
        elif row["status"] == "ok":
            live[row["track_id"]] = (row["uri"], row["label"])
        out.append(row)
    return out


def _duplicate(row: dict[str, Any], keeper: Mapping[str, Any]) -> dict[str, Any]:
    """``row`` skipped as a duplicate of ``keeper``'s audio, with a label conflict if their labels differ."""
    row = {**row, "status": "skipped", "error": f"duplicate of {keeper['uri']}", "row": None}
    if keeper["label"] is not None and row.get("label") is not None and keeper["label"] != row["label"]:
        row["label_conflict"] = LabelConflict(row["uri"], row["label"], keeper["uri"], keeper["label"])
    return row


def _is_link(uri: str) -> bool:
    """Whether ``uri`` is a local symbolic link (object stores have none)."""
    return not is_remote(uri) and os.path.islink(uri)


@dataclass(frozen=True)
class RecoveredRun:
    """What recovery committed of a run that died before its commit: its receipts' rows, and the rows
    its unfinished shards had been allocated (they stay empty; their tracks are selected again)."""

    rows: list[dict[str, Any]]
    unused_rows: int


def recover_interrupted_runs(layout: StoreLayout, store: FeatureStore) -> dict[str, RecoveredRun]:
    """Commit the receipts of runs that stopped before their commit; returns each such run's rows,
    which the recovering run reports like its own (its failures too), and its unused rows.

    Their features are already in the store, so nothing is decoded twice; rows of shards that never
    finished stay unused (counted from the run's allocation record and reported, not leaked
    silently) and those tracks are selected again as new. Call it holding the store's lease: then
    every run with receipts is one that died.
    """
    recovered: dict[str, RecoveredRun] = {}
    for run_id in _run_dirs(layout):
        fs, part = filesystem(layout.manifest_part(run_id), layout.storage_options)
        if fs.exists(part):  # committed; the track ids and the clean-up may have been lost
            rows = pq.read_table(part, filesystem=fs, schema=MANIFEST_SCHEMA).to_pylist()
            _record_track_ids(store, rows, read_manifest(layout))
            _clear_run(layout, run_id)
            continue
        unused = _unused_rows(layout, run_id)
        receipts = read_parquet_dir(
            layout.run_dir(run_id), schema=MANIFEST_SCHEMA, storage_options=layout.storage_options
        ).to_pylist()
        recovered[run_id] = RecoveredRun(commit_run(layout, store, run_id, receipts), unused)
    return recovered


def _run_dirs(layout: StoreLayout) -> list[str]:
    """Ids of the runs whose receipts wait in ``runs/`` (being written, or left by a crash)."""
    fs, runs = filesystem(layout.runs, layout.storage_options)
    if not fs.isdir(runs):
        return []
    return sorted(path.rstrip("/").rsplit("/", 1)[-1] for path in fs.ls(runs, detail=False))


def _clear_run(layout: StoreLayout, run_id: str) -> None:
    fs, path = filesystem(layout.run_dir(run_id), layout.storage_options)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def _track_ref(record: dict[str, Any]) -> TrackRef:
    def value(key: str) -> Any:
        item = record.get(key)
        return None if item is None or pd.isna(item) else item

    fold = value("fold")
    return TrackRef(
        uri=record["uri"],
        dataset=record["dataset"],
        size_bytes=int(record["size_bytes"]),
        source_version=str(record["source_version"]),
        track_id=value("track_id"),
        label=value("label"),
        split=value("split"),
        fold=None if fold is None else int(fold),
    )


@dataclass(frozen=True)
class FailedTrack:
    """A file that did not become features this run, and why (decoding, or its shard failing)."""

    uri: str
    reason: str


@dataclass(frozen=True)
class LabelConflict:
    """The same audio under two labels: ``uri`` (labelled ``label``) was skipped as a duplicate of
    ``kept_uri``, which holds the track under ``kept_label``. One of the two labels is wrong."""

    uri: str
    label: str
    kept_uri: str
    kept_label: str


@dataclass(frozen=True)
class ShardRun:
    """How one shard ran: its tracks, seconds inside the task, worker process and peak memory."""

    index: int
    tracks: int
    seconds: float
    pid: int
    peak_rss: int


@dataclass(frozen=True)
class IngestSummary:
    """What an ingest run did: what the CLI prints, the artifacts show and the exit code is read from.

    ``counts`` and ``by_label`` count the committed rows by status (``ok``, ``failed``,
    ``skipped``, ``removed``); ``unprocessed`` are the tracks of shards that failed after their
    retries (they are selected again next run); ``label_conflicts`` the duplicates whose label differs
    from that of the file keeping their track; ``batches`` the batches committed (a backfill's unit
    of progress); ``unused_rows`` the store rows that recovered runs' unfinished shards had been
    allocated and never filled; ``phases`` holds the flow's wall seconds per step.
    """

    run_id: str
    source: str
    store: str
    dataset: str
    listed: int
    selected: int
    counts: dict[str, int]
    by_label: dict[str, dict[str, int]]
    failures: tuple[FailedTrack, ...]
    unprocessed: tuple[FailedTrack, ...]
    recovered_runs: tuple[str, ...]
    feature_sets: tuple[str, ...]
    wall_s: float
    compute_s: float
    phases: dict[str, float]
    shards: tuple[ShardRun, ...]
    batches: int = 0
    unused_rows: int = 0
    label_conflicts: tuple[LabelConflict, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def recovery_note(self) -> str | None:
        """What the run committed of interrupted runs (None if nothing): their ids, and the store rows
        their unfinished shards were allocated and left empty."""
        if not self.recovered_runs:
            return None
        unused = f"; their unfinished shards left {self.unused_rows} store rows unused" if self.unused_rows else ""
        return (
            f"committed the finished shards of {len(self.recovered_runs)} interrupted run(s) "
            f"({', '.join(self.recovered_runs)}; counted above){unused}"
        )


@dataclass
class RunTally:
    """A run's counts, added commit by commit: a batch's rows are counted and dropped once committed,
    so a backfill holds the failures and per-shard timings, never every track's row."""

    counts: dict[str, int] = field(default_factory=dict)
    by_label: dict[str, dict[str, int]] = field(default_factory=dict)
    failures: list[FailedTrack] = field(default_factory=list)
    unprocessed: list[FailedTrack] = field(default_factory=list)
    shards: list[ShardRun] = field(default_factory=list)
    label_conflicts: list[LabelConflict] = field(default_factory=list)
    recovered_runs: list[str] = field(default_factory=list)
    batches: int = 0
    unused_rows: int = 0

    def add(
        self,
        committed: Sequence[dict[str, Any]],
        *,
        results: Sequence[ShardResult] = (),
        unprocessed: Sequence[FailedTrack] = (),
    ) -> None:
        """Count one commit's rows, its shards' timings and its shards that failed."""
        for row in committed:
            self.counts[row["status"]] = self.counts.get(row["status"], 0) + 1
            label = self.by_label.setdefault(
                row["label"] or "(none)", {"ok": 0, "failed": 0, "skipped": 0, "removed": 0}
            )
            label[row["status"]] += 1
        self.failures += [FailedTrack(r["uri"], r["error"]) for r in committed if r["status"] == "failed"]
        self.label_conflicts += [r["label_conflict"] for r in committed if "label_conflict" in r]
        self.unprocessed += unprocessed
        self.shards += [
            ShardRun(r.index, len(r.rows), r.seconds, r.pid, r.peak_rss_bytes)
            for r in sorted(results, key=lambda r: r.index)
        ]

    def add_recovered(self, recovered: dict[str, RecoveredRun]) -> None:
        """Count what recovery committed of dead runs: their failures are failures of this run's report."""
        for run_id, run in recovered.items():
            self.add(run.rows)
            self.recovered_runs.append(run_id)
            self.unused_rows += run.unused_rows

    def summary(self, **run: Any) -> IngestSummary:
        """The run's summary; ``run`` carries its facts (``run_id``, ``source``, ``store``,
        ``dataset``, ``listed``, ``selected``, ``feature_sets``, ``wall_s``, ``phases``)."""
        return IngestSummary(
            counts=dict(self.counts),
            by_label={label: dict(counts) for label, counts in self.by_label.items()},
            failures=tuple(self.failures),
            unprocessed=tuple(self.unprocessed),
            recovered_runs=tuple(self.recovered_runs),
            compute_s=sum(shard.seconds for shard in self.shards),
            shards=tuple(self.shards),
            label_conflicts=tuple(self.label_conflicts),
            batches=self.batches,
            unused_rows=self.unused_rows,
            **run,
        )
