"""The store: one root (a folder or ``s3://bucket/prefix``) holding the manifest and feature arrays.

::

    <root>/manifest/part-<run_id>.parquet   one part per ingest run (append-only)
    <root>/features.zarr/<set>/data          float16 (n_rows, n_bins, n_frames), one row per chunk
    <root>/features.zarr/track_id            (n_rows,) the track in each row ("" = unused row)
    <root>/runs/<run_id>/shard-*.parquet     receipts of a run not yet committed (crash recovery)
"""

from .features import FeatureStore, FeatureWriter, RowRange, holds, open_features, read_rows, store_attrs
from .layout import StoreLayout
from .manifest import (
    MANIFEST_SCHEMA,
    current_tracks,
    latest_rows,
    read_manifest,
    require_feature_sets,
    require_store_root,
    require_tracks,
    write_manifest_part,
)
from .parquet import read_parquet_dir, write_parquet_atomic

__all__ = [
    "MANIFEST_SCHEMA",
    "FeatureStore",
    "FeatureWriter",
    "RowRange",
    "StoreLayout",
    "current_tracks",
    "holds",
    "latest_rows",
    "open_features",
    "read_manifest",
    "read_parquet_dir",
    "read_rows",
    "require_feature_sets",
    "require_store_root",
    "require_tracks",
    "store_attrs",
    "write_manifest_part",
    "write_parquet_atomic",
]
