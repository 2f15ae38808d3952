"""Per-track embeddings as Parquet: ``<root>/embeddings/model=<name>/version=<v>/part-<shard>.parquet``.

The files follow the scores' rules (:mod:`genreflow.pipeline.store.scores`, whose layout and
whole-file rewrites they use): a shard is a fixed range of feature-store rows, one row per track
per model version, each file replaced whole. The vector is one ``fixed_size_list<float32>`` column,
L2-normalised, so a dot product is the cosine similarity.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pyarrow as pa

SCHEMA_VERSION = "1"
WRITTEN_AT = "embedded_at"


def embeddings_schema(model: str, version: str, dim: int) -> pa.Schema:
    """The schema of one model version's embedding files (``dim`` floats per track)."""
    metadata = {
        "genreflow.embeddings_schema": SCHEMA_VERSION,
        "genreflow.model": model,
        "genreflow.model_version": version,
        "genreflow.dim": str(dim),
    }
    return pa.schema(
        [
            ("track_id", pa.string()),
            ("uri", pa.string()),
            ("model_version", pa.string()),
            ("feature_set", pa.string()),
            (WRITTEN_AT, pa.timestamp("us", tz="UTC")),
            ("n_windows", pa.int32()),
            ("embedding", pa.list_(pa.float32(), dim)),
        ],
        metadata=metadata,
    )


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, float32; an all-zero row stays zero (similar to nothing)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def embeddings_table(
    schema: pa.Schema,
    *,
    track_ids: Sequence[str],
    uris: Sequence[str],
    feature_set: str,
    embedded_at: datetime,
    n_windows: Sequence[int],
    vectors: np.ndarray,
) -> pa.Table:
    """Rows of ``schema`` from per-track mean embeddings, float [shape=(n_tracks, dim)], normalised here."""
    dim = schema.field("embedding").type.list_size
    flat = normalise(np.asarray(vectors).reshape(len(track_ids), dim)).reshape(-1)
    n = len(track_ids)
    columns = {
        "track_id": list(track_ids),
        "uri": list(uris),
        "model_version": [schema.metadata[b"genreflow.model_version"].decode()] * n,
        "feature_set": [feature_set] * n,
        WRITTEN_AT: [embedded_at] * n,
        "n_windows": list(n_windows),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), dim),
    }
    return pa.table(columns, schema=schema)


def vectors_of(table: pa.Table) -> np.ndarray:
    """The ``embedding`` column as a float32 matrix [shape=(n_rows, dim)], without a copy per row."""
    column = table["embedding"].combine_chunks()
    dim = column.type.list_size
    return column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), dim).astype(np.float32, copy=False)
