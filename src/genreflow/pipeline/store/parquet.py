"""Parquet files that appear whole or not at all, locally and on object stores."""

from __future__ import annotations

import contextlib
import io
import posixpath
import uuid
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..uri import filesystem, is_remote, join


def write_parquet_atomic(table: pa.Table, uri: str, *, storage_options: Mapping[str, Any] | None = None) -> None:
    """Write ``table`` to ``uri`` so readers never see a partial file (see :func:`write_bytes_atomic`)."""
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    write_bytes_atomic(buffer.getvalue(), uri, storage_options=storage_options)


def write_bytes_atomic(data: bytes, uri: str, *, storage_options: Mapping[str, Any] | None = None) -> None:
    """Write ``data`` to ``uri`` whole or not at all.

    Locally the file is written under a temporary name and renamed (atomic on one filesystem); on
    an object store it is sent as one PUT, which is atomic per object.
    """
    fs, path = filesystem(uri, storage_options)
    if is_remote(uri):
        fs.pipe_file(path, data)
        return
    parent = posixpath.dirname(path)
    fs.makedirs(parent, exist_ok=True)
    temporary = join(parent, f".{uuid.uuid4().hex}.tmp")
    try:
        with fs.open(temporary, "wb") as handle:
            handle.write(data)
        fs.mv(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):  # a full disk: free what the half-written copy holds
            fs.rm_file(temporary)
        raise


def read_parquet_dir(uri: str, *, schema: pa.Schema, storage_options: Mapping[str, Any] | None = None) -> pa.Table:
    """All ``*.parquet`` files directly under ``uri`` as one table (empty with ``schema`` if none)."""
    fs, path = filesystem(uri, storage_options)
    if not fs.isdir(path):
        return schema.empty_table()
    files = sorted(p for p in fs.ls(path, detail=False) if p.endswith(".parquet"))
    if not files:
        return schema.empty_table()
    tables = [pq.read_table(f, filesystem=fs, schema=schema) for f in files]
    return pa.concat_tables(tables)
