"""Location helpers so local paths and ``s3://`` URIs behave alike (through fsspec)."""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem


def filesystem(uri: str, storage_options: Mapping[str, Any] | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """Return the filesystem serving ``uri`` and the path inside it.

    Parameters
    ----------
    uri : str
        A local path or a URL such as ``s3://bucket/prefix``.
    storage_options : mapping, optional
        Passed to the filesystem (``endpoint_url``, ``key``, ...); ignored for local paths.
    """
    if is_remote(uri):
        return fsspec.core.url_to_fs(uri, **dict(storage_options or {}))
    fs, path = fsspec.core.url_to_fs(uri)
    return fs, posixpath.normpath(path)  # `lib/../lib` and `lib` are one source: their files keep one URI


def is_remote(uri: str) -> bool:
    """True for URLs with a non-local protocol (``s3://``, ``memory://``, ...)."""
    protocol = fsspec.utils.get_protocol(uri)
    return protocol not in ("file", "local")


def join(base: str, *parts: str) -> str:
    """Join path segments onto a local path or URL without doubling or losing separators.

    Examples
    --------
    >>> join("s3://bucket/store", "manifest", "part-1.parquet")
    's3://bucket/store/manifest/part-1.parquet'
    >>> join("/data/store/", "features.zarr")
    '/data/store/features.zarr'
    """
    return posixpath.join(base.rstrip("/"), *(p.strip("/") for p in parts))


def to_uri(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """The URI a user would type for ``path`` on ``fs``: plain path locally, ``proto://path`` remotely."""
    if isinstance(fs, LocalFileSystem):
        return path
    return fs.unstrip_protocol(path)


def require_writable_folder(uri: str, *, what: str) -> None:
    """Raise now, before a run computes anything, when ``uri`` cannot take files: it is a file, or
    (locally) its nearest existing folder is not writable or sits on a read-only filesystem. Remote
    roots are checked by their first write (an object store has no folders to ask).

    Raises
    ------
    StoreError
        Naming ``what`` (``"--out"``, ``"store"``), the path and the reason.
    """
    from .errors import StoreError

    if is_remote(uri):
        return
    path = filesystem(uri)[1]
    if os.path.exists(path) and not os.path.isdir(path):
        raise StoreError(f"{what} {uri}: a file, not a folder")
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise StoreError(f"{what} {uri}: {existing} is a file, so no folder can be made under it")
    if not os.access(existing, os.W_OK) or os.statvfs(existing).f_flag & os.ST_RDONLY:
        raise StoreError(f"{what} {uri}: {existing} is not writable")
