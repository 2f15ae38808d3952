"""Location helpers so local paths and ``s3://`` URIs behave alike (through fsspec)."""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Mapping
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

_URL = re.compile(r"^(?P<proto>[A-Za-z][A-Za-z0-9+.-]*://)(?P<rest>.*)$", re.DOTALL)
# Azure spells a container as ``container@account``: there a user alone is no secret, a password is.
_CONTAINER_AT_ACCOUNT = ("abfs://", "abfss://", "az://")
# Object stores whose fsspec filesystems cache listings (fsspec's DirCache) unless told not to.
_LISTING_CACHES = ("s3", "s3a", "gs", "gcs", "abfs", "abfss", "az")


def filesystem(uri: str, storage_options: Mapping[str, Any] | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """Return the filesystem serving ``uri`` and the path inside it.

    Parameters
    ----------
    uri : str
        A local path or a URL such as ``s3://bucket/prefix``.
    storage_options : mapping, optional
        Passed to the filesystem (``endpoint_url``, ``key``, ...); ignored for local paths.

    Raises
    ------
    ParameterError
        ``uri`` or the ``endpoint_url`` carries credentials (see :func:`refuse_credentials`).
    """
    refuse_credentials(uri)  # the endpoint too, even for local paths: a run records its options
    refuse_credentials((storage_options or {}).get("endpoint_url") or "", what="S3 endpoint")
    if is_remote(uri):
        options = dict(storage_options or {})
        if fsspec.utils.get_protocol(uri) in _LISTING_CACHES and "::" not in uri:
            # A store is shared: workers write receipts, other runs write manifest parts and scores. A
            # cached listing would hide them from a long-lived process (serve, a notebook, recovery).
            options.setdefault("use_listings_cache", False)
        return fsspec.core.url_to_fs(uri, **options)
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

    refuse_credentials(uri, what=what)
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
    if os.statvfs(existing).f_flag & os.ST_RDONLY:  # root's os.access says yes to these
        raise StoreError(f"{what} {uri}: {existing} is on a read-only filesystem")
    if not os.access(existing, os.W_OK):
        raise StoreError(f"{what} {uri}: {existing} is not writable")


def refuse_credentials(uri: str, *, what: str = "") -> None:
    """Raise when ``uri`` spells credentials in its authority (``s3://KEY:SECRET@bucket/...``).

    A URI travels everywhere: log lines, Prefect flow-run parameters, manifest rows, model cards. A
    secret inside one would be copied into all of them, so it is refused before any of that happens,
    with a message that shows the URI with its credentials masked. Each link of a chained URL
    (``simplecache::s3://...``) is checked.

    Raises
    ------
    ParameterError
        Naming ``what`` (``"store"``, ``"--out"``) and the masked URI.
    """
    from .errors import ParameterError

    links = uri.split("::")
    if not any(_has_credentials(link) for link in links):
        return
    masked = "::".join(mask_credentials(link) for link in links)
    raise ParameterError(
        f"{what + ' ' if what else ''}{masked}: credentials in a URI are refused (they would be copied into logs, "
        "Prefect runs and the store); give them through the environment (AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
    )


def mask_credentials(uri: str) -> str:
    """``uri`` with the user and password before its host replaced by ``***``.

    Examples
    --------
    >>> mask_credentials("s3://AKIA:s3cr3t@bucket/store")
    's3://***@bucket/store'
    >>> mask_credentials("s3://AKIA:with/slash@bucket/store")  # AWS secrets may hold '/'
    's3://***@bucket/store'
    >>> mask_credentials("s3://bucket/a@b")
    's3://bucket/a@b'
    >>> mask_credentials("abfs://container@account.dfs.core.windows.net/store")  # Azure's container, no secret
    'abfs://container@account.dfs.core.windows.net/store'
    """
    if not _has_credentials(uri):
        return uri
    proto, after = _after_protocol(uri)
    head = after.split("/", 1)[0]
    if "@" in head:
        return f"{proto}***{after[head.rindex('@') :]}"
    return f"{proto}***{after[after.index('@') :] if '@' in after else after[len(head) :]}"


def _has_credentials(uri: str) -> bool:
    """An ``@`` in the authority, or a ``:`` there that is not a port's: an unencoded secret with a
    ``/`` (``s3://KEY:ab/cd@bucket``) ends the authority early, yet leaves ``KEY:ab`` in it, and no
    bucket name holds a ``:``."""
    proto, after = _after_protocol(uri)
    if not proto:
        return False
    head = after.split("/", 1)[0]
    if "@" in head:
        return ":" in head.rpartition("@")[0] or proto.lower() not in _CONTAINER_AT_ACCOUNT
    host_port = head.rpartition("]")[2] if head.startswith("[") else head  # an IPv6 host: [::1]:9000
    return ":" in host_port and not host_port.rpartition(":")[2].isdigit()


def _after_protocol(uri: str) -> tuple[str, str]:
    """``("proto://", the rest)``; a plain path has no protocol."""
    match = _URL.match(uri)
    return (match["proto"], match["rest"]) if match else ("", uri)
