"""Per-track scores as hive-partitioned Parquet: ``<scores>/model=<name>/version=<v>/part-<shard>.parquet``.

A shard is a fixed range of :data:`SHARD_ROWS` feature-store rows, so a track always lands in the
same file, and a file has one writer at a time. Every write replaces a whole file atomically
(:func:`~genreflow.pipeline.store.parquet.write_bytes_atomic`), keeping one row per track per
model version: rows scored again replace their old rows, retired rows are dropped.

The ``model`` and ``version`` columns come from the partition path. The files repeat the version
as ``model_version`` but not the name: a ``model`` column in both the file and the path makes
pandas and ``pyarrow.dataset`` refuse the dataset (string vs dictionary partition types, measured).
Each file's metadata names its model, version, labels and schema version.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import ParameterError
from ..uri import filesystem, join
from .parquet import write_bytes_atomic, write_parquet_atomic

SCHEMA_VERSION = "1"
SHARD_ROWS = 1024
FAILURES = "_failures.csv"  # "_" keeps it out of pyarrow/pandas datasets, ".csv" out of `*.parquet` globs
FAILURE_COLUMNS = ("track_id", "uri", "reason", "failed_at")
BASE_COLUMNS = (
    ("track_id", pa.string()),
    ("uri", pa.string()),
    ("model_version", pa.string()),
    ("feature_set", pa.string()),
    ("scored_at", pa.timestamp("us", tz="UTC")),
    ("n_windows", pa.int32()),
    ("label_top", pa.string()),
    ("prob_top", pa.float32()),
    ("top3", pa.list_(pa.string())),
)  # then one float32 ``p_<label>`` per label
_NOT_IN_NAMES = re.compile(r"[\W_]+")  # keeps letters and digits of every script


@dataclass(frozen=True)
class ScoresLayout:
    """Where one root of per-track Parquet (scores, or embeddings) keeps each model version's files."""

    root: str
    storage_options: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def version_dir(self, model: str, version: str) -> str:
        return join(self.root, f"model={model}", f"version={version}")

    def part(self, model: str, version: str, shard: int) -> str:
        return join(self.version_dir(model, version), f"part-{shard:06d}.parquet")

    def failures(self, model: str, version: str) -> str:
        return join(self.version_dir(model, version), FAILURES)


def shard_of(row: int) -> int:
    """The score file of a feature-store row.

    Examples
    --------
    >>> shard_of(0), shard_of(1023), shard_of(1024)
    (0, 0, 1)
    """
    return int(row) // SHARD_ROWS


def probability_column(label: str) -> str:
    """The column of one label: ``p_`` and the label lower-cased, runs of other characters as ``_``.

    Letters and digits of any script are kept: Parquet, pandas, DuckDB and Polars all take Unicode
    column names. See :func:`probability_columns` for the unique mapping a file uses.

    Examples
    --------
    >>> probability_column("Hip-Hop"), probability_column("no vocals"), probability_column("ジャズ")
    ('p_hip_hop', 'p_no_vocals', 'p_ジャズ')
    """
    return "p_" + _NOT_IN_NAMES.sub("_", label.lower()).strip("_")


def probability_columns(labels: Sequence[str]) -> dict[str, str]:
    """Each label's column, unique: in label order, a name already taken (``Hip-Hop`` and ``hip hop``)
    gets ``_2``, ``_3``, ...; a label with no letter or digit becomes ``p_label<i>``. Recorded in each
    file's metadata (``genreflow.columns``), so readers can map columns back to labels."""
    columns: dict[str, str] = {}
    for index, label in enumerate(labels):
        base = probability_column(label)
        base = base if base != "p_" else f"p_label{index}"
        name, suffix = base, 1
        while name in columns.values():
            suffix += 1
            name = f"{base}_{suffix}"
        columns[label] = name
    return columns


def scores_schema(model: str, version: str, labels: Sequence[str]) -> pa.Schema:
    """The schema of one model version's files, with its labels in the metadata.

    Raises
    ------
    ParameterError
        Two labels are the same.
    """
    if len(set(labels)) != len(labels):
        raise ParameterError(
            f"labels of {model}@{version} repeat: {sorted({x for x in labels if labels.count(x) > 1})}"
        )
    mapping = probability_columns(labels)
    columns = [mapping[label] for label in labels]
    metadata = {
        "genreflow.scores_schema": SCHEMA_VERSION,
        "genreflow.model": model,
        "genreflow.model_version": version,
        "genreflow.labels": json.dumps(list(labels)),
        "genreflow.columns": json.dumps(mapping, ensure_ascii=False),
    }
    return pa.schema([*BASE_COLUMNS, *((name, pa.float32()) for name in columns)], metadata=metadata)


def scores_table(
    schema: pa.Schema,
    *,
    track_ids: Sequence[str],
    uris: Sequence[str],
    feature_set: str,
    scored_at: datetime,
    n_windows: Sequence[int],
    probabilities: np.ndarray,
) -> pa.Table:
    """Rows of ``schema`` from per-track probabilities, float [shape=(n_tracks, n_labels)]."""
    labels = json.loads(schema.metadata[b"genreflow.labels"])
    probabilities = np.asarray(probabilities, dtype=np.float32).reshape(len(track_ids), len(labels))
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :3]
    top = order[:, 0] if len(track_ids) else np.zeros(0, dtype=int)
    columns = {
        "track_id": list(track_ids),
        "uri": list(uris),
        "model_version": [schema.metadata[b"genreflow.model_version"].decode()] * len(track_ids),
        "feature_set": [feature_set] * len(track_ids),
        "scored_at": [scored_at] * len(track_ids),
        "n_windows": list(n_windows),
        "label_top": [labels[i] for i in top],
        "prob_top": probabilities[np.arange(len(track_ids)), top],
        "top3": [[labels[i] for i in row] for row in order],
    }
    for index, name in enumerate(schema.names[len(BASE_COLUMNS) :]):
        columns[name] = probabilities[:, index]
    return pa.table(columns, schema=schema)


def read_part(layout: ScoresLayout, model: str, version: str, shard: int) -> pa.Table | None:
    """One score file, or None when the shard has none yet."""
    fs, path = filesystem(layout.part(model, version, shard), layout.storage_options)
    if not fs.exists(path):
        return None
    return pq.read_table(io.BytesIO(fs.cat_file(path)))


def scored_tracks(layout: ScoresLayout, model: str, version: str, *, written_at: str = "scored_at") -> pd.DataFrame:
    """Every scored track of a model version: ``track_id, shard, scored_at`` (read by column).

    ``written_at`` names the files' time column (``embedded_at`` in the embeddings' files)."""
    fs, folder = filesystem(layout.version_dir(model, version), layout.storage_options)
    frames = [pd.DataFrame({"track_id": pd.Series(dtype=str), "shard": pd.Series(dtype="int64"),
                            "scored_at": pd.Series(dtype="datetime64[us, UTC]")})]  # fmt: skip
    if fs.isdir(folder):
        for path in sorted(p for p in fs.ls(folder, detail=False) if p.endswith(".parquet")):
            shard = int(path.rsplit("part-", 1)[1].split(".")[0])
            table = pq.read_table(path, filesystem=fs, columns=["track_id", written_at])
            frames.append(table.to_pandas().rename(columns={written_at: "scored_at"}).assign(shard=shard))
    return pd.concat(frames, ignore_index=True)


def rewrite_part(
    layout: ScoresLayout,
    model: str,
    version: str,
    shard: int,
    *,
    schema: pa.Schema | None = None,
    new_rows: pa.Table | None = None,
    drop: Collection[str] = (),
) -> int:
    """Replace one shard's file: its old rows minus ``drop`` and minus ``new_rows``' tracks, plus
    ``new_rows``, sorted by track id. An emptied file is removed. Returns the rows it now holds.

    ``schema`` is the file's (default: the old file's own, enough to drop rows)."""
    old = read_part(layout, model, version, shard)
    if old is None and new_rows is None:
        return 0
    schema = schema or (old.schema if old is not None else new_rows.schema)
    replaced = set(drop) | (set(new_rows["track_id"].to_pylist()) if new_rows is not None else set())
    pieces = []
    if old is not None:
        keep = pc.invert(pc.is_in(old["track_id"], value_set=pa.array(sorted(replaced), pa.string())))
        pieces.append(old.filter(keep).select(schema.names).cast(schema))
    if new_rows is not None:
        pieces.append(new_rows)
    uri = layout.part(model, version, shard)
    table = pa.concat_tables(pieces).sort_by("track_id") if pieces else schema.empty_table()
    if table.num_rows == 0:
        fs, path = filesystem(uri, layout.storage_options)
        if fs.exists(path):
            fs.rm(path)
        return 0
    write_parquet_atomic(table.replace_schema_metadata(schema.metadata), uri, storage_options=layout.storage_options)
    return table.num_rows


def read_failures(layout: ScoresLayout, model: str, version: str) -> pd.DataFrame:
    """The tracks of a model version that could not be scored, with reasons (empty if none)."""
    fs, path = filesystem(layout.failures(model, version), layout.storage_options)
    if not fs.exists(path):
        return pd.DataFrame({name: pd.Series(dtype=str) for name in FAILURE_COLUMNS})
    return pd.read_csv(io.BytesIO(fs.cat_file(path)), dtype=str, keep_default_na=False)


def write_failures(layout: ScoresLayout, model: str, version: str, failures: pd.DataFrame) -> None:
    """Replace the failures table (one row per track); removed when nothing is failing, left alone
    when unchanged."""
    uri = layout.failures(model, version)
    fs, path = filesystem(uri, layout.storage_options)
    if failures.empty:
        if fs.exists(path):
            fs.rm(path)
        return
    data = failures[list(FAILURE_COLUMNS)].sort_values("track_id").to_csv(index=False).encode()
    if not (fs.exists(path) and fs.cat_file(path) == data):
        write_bytes_atomic(data, uri, storage_options=layout.storage_options)
