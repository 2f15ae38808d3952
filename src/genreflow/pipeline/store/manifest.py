"""The manifest: one row per track and ingest attempt, append-only Parquet parts.

Only the ingest flow writes it (one part per run). Readers take the newest row per track
(:func:`latest_rows`), so a re-ingested track supersedes its old row without rewriting history.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import pyarrow as pa

from ..errors import StoreError
from ..uri import filesystem, require_writable_folder
from .layout import StoreLayout
from .parquet import read_parquet_dir, write_parquet_atomic

MANIFEST_SCHEMA = pa.schema(
    [
        ("track_id", pa.string()),
        ("uri", pa.string()),
        ("dataset", pa.string()),
        ("label", pa.string()),
        ("split", pa.string()),
        ("fold", pa.int64()),
        ("duration_s", pa.float64()),
        ("sample_rate", pa.int64()),
        ("channels", pa.int64()),
        ("size_bytes", pa.int64()),
        ("source_version", pa.string()),
        ("content_hash", pa.string()),
        ("row", pa.int64()),
        ("window_start_s", pa.float64()),
        ("valid_s", pa.float64()),
        ("status", pa.string()),  # ok / failed / skipped / removed
        ("error", pa.string()),
        ("ingested_at", pa.timestamp("us", tz="UTC")),
        ("run_id", pa.string()),
        ("feature_sets", pa.list_(pa.string())),
    ]
)
MANIFEST_SCHEMA = MANIFEST_SCHEMA.with_metadata({"genreflow.manifest_schema": "1"})
STATUSES = ("ok", "failed", "skipped", "removed")  # removed: the file vanished from its source


def rows_to_table(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Manifest rows (dicts with every schema column) as a table in :data:`MANIFEST_SCHEMA`."""
    columns = {name: [row.get(name) for row in rows] for name in MANIFEST_SCHEMA.names}
    return pa.table(columns, schema=MANIFEST_SCHEMA)


def write_manifest_part(layout: StoreLayout, run_id: str, rows: Sequence[Mapping[str, Any]]) -> str:
    """Append one run's rows as ``manifest/part-<run_id>.parquet``; returns its URI."""
    uri = layout.manifest_part(run_id)
    write_parquet_atomic(rows_to_table(rows), uri, storage_options=layout.storage_options)
    return uri


def read_manifest(layout: StoreLayout) -> pd.DataFrame:
    """Every manifest row of the store, oldest first (empty, with all columns, for a new store)."""
    table = read_parquet_dir(layout.manifest, schema=MANIFEST_SCHEMA, storage_options=layout.storage_options)
    frame = table.to_pandas(types_mapper=_nullable_types)
    return frame.sort_values("ingested_at", kind="stable").reset_index(drop=True)


def require_store_root(layout: StoreLayout) -> None:
    """Raise now, before a run starts, when the store root cannot be written (a new root is created on
    first use).

    Raises
    ------
    StoreError
        The root is a file, or not writable.
    """
    require_writable_folder(layout.root, what="store")


def require_tracks(layout: StoreLayout) -> None:
    """Raise now, before a run starts, when the store holds no ingested tracks (a listing, no reads).

    Raises
    ------
    StoreError
        The root is a file, or nothing was ingested under it yet.
    """
    fs, root = filesystem(layout.root, layout.storage_options)
    if fs.isfile(root):
        raise StoreError(f"{layout.root}: a file, not a store folder")
    fs, path = filesystem(layout.manifest, layout.storage_options)
    if not fs.isdir(path) or not any(p.endswith(".parquet") for p in fs.ls(path, detail=False)):
        raise StoreError(
            f"{layout.root}: no tracks ingested here yet (run `genreflow ingest SOURCE --store {layout.root}`)"
        )


def require_feature_sets(manifest: pd.DataFrame, feature_sets: Sequence[str], *, root: str, needed_by: str) -> None:
    """Raise when no current ``ok`` track holds every one of ``feature_sets``, naming what is missing
    and the command that adds it (a store ingested with other sets than a model reads).

    Raises
    ------
    StoreError
        Tracks are stored, but none with every set ``needed_by`` reads.
    """
    stored = current_tracks(manifest)
    stored = stored[stored["status"] == "ok"]["feature_sets"].map(set)
    if stored.empty or stored.map(lambda names: set(feature_sets) <= names).any():
        return
    have = sorted(set().union(*stored))
    missing = sorted(set(feature_sets) - set(have))
    wanted = ",".join(sorted(set(have) | set(feature_sets)))
    raise StoreError(
        f"{root}: {needed_by} reads {'+'.join(feature_sets)}, but its tracks are stored without "
        f"{', '.join(missing or feature_sets)} (stored: {', '.join(have) or 'none'}); add it with "
        f"`genreflow ingest SOURCE --store {root} --features {wanted}` (the tracks are decoded again)"
    )


def latest_rows(manifest: pd.DataFrame, *, by: str = "uri") -> pd.DataFrame:
    """The newest row for each ``by`` value (``uri`` for diffing, ``track_id`` for readers)."""
    if manifest.empty:
        return manifest
    return manifest.drop_duplicates(subset=by, keep="last").reset_index(drop=True)


def current_tracks(manifest: pd.DataFrame) -> pd.DataFrame:
    """Each track's current row: the newest row of every file, then the newest per ``track_id``.

    A file whose newest row is ``skipped`` (its content is stored under another name) or ``removed``
    (it vanished from its source) holds no track: neither it nor its older rows count, so a
    duplicate cannot hide its original, an edited file under a content-hash id leaves its old id
    behind, and a deleted file's track is gone for training and scoring.
    """
    files = latest_rows(manifest, by="uri")
    if files.empty:
        return files
    return latest_rows(files[files["status"].isin(["ok", "failed"])], by="track_id")


def _nullable_types(arrow_type: pa.DataType) -> Any:
    if pa.types.is_string(arrow_type):
        return pd.StringDtype()
    if pa.types.is_integer(arrow_type):
        return pd.Int64Dtype()
    return None
