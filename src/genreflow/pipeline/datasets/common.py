"""What every catalogue adapter returns, and the listing they share."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import fsspec
import pandas as pd

from ..audio import AUDIO_EXTENSIONS
from ..errors import CatalogueError
from ..uri import filesystem, to_uri

CATALOGUE_COLUMNS = {
    "track_id": "string",  # null where the id is the content hash, known only once the file is read
    "uri": "string",
    "dataset": "string",
    "label": "string",
    "split": "string",  # train / valid / test, or null
    "fold": "Int64",
    "size_bytes": "Int64",
    "source_version": "string",  # mtime (local) or ETag (S3): with size, tells a changed file
}
SPLITS = ("train", "valid", "test")
MACOS_METADATA = "__MACOSX"  # the folder of AppleDouble files macOS adds to the zip archives it makes


@dataclass(frozen=True)
class AudioFile:
    """One listed audio file: where it is and what tells a new version of it."""

    uri: str
    relpath: str
    size_bytes: int
    source_version: str


def require_source(
    root: str, *, storage_options: Mapping[str, Any] | None = None
) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and path of a source folder or prefix, freshly listed; raises before any run starts.

    Raises
    ------
    CatalogueError
        ``root`` does not exist or is not a folder/prefix.
    """
    fs, base = filesystem(root, storage_options)
    base = base.rstrip("/")
    fs.invalidate_cache(base)  # a nightly run must see files added since the last listing
    if not fs.isdir(base):
        kind = "a file, not a folder" if fs.exists(base) else "no such folder or prefix"
        raise CatalogueError(f"{root}: {kind}")
    return fs, base


def source_uri(root: str, *, storage_options: Mapping[str, Any] | None = None) -> str:
    """``root`` as the URIs of its listed files spell it (an absolute path locally, ``s3://...`` remotely)."""
    fs, base = filesystem(root, storage_options)
    return to_uri(fs, base.rstrip("/"))


def _may_be_audio(relpath: str, *, extensionless: bool) -> bool:
    """An audio extension, or with ``extensionless`` none at all (decoded by its content, or failed
    with the reason); never hidden extensionless files (``.DS_Store``) nor other formats (``cover.jpg``),
    nor macOS's AppleDouble sidecars (``._song.wav``, ``__MACOSX/``), which hold metadata, not audio."""
    name = posixpath.basename(relpath)
    if name.startswith("._") or MACOS_METADATA in relpath.split("/"):
        return False
    extension = posixpath.splitext(name)[1].lower()
    return extension in AUDIO_EXTENSIONS or (extensionless and extension == "" and not name.startswith("."))


def list_audio(
    root: str, *, storage_options: Mapping[str, Any] | None = None, extensionless: bool = False
) -> list[AudioFile]:
    """Every audio file under ``root`` by extension (and with ``extensionless``, files without one: a
    drop of unlabelled files named by id), sorted by path.

    Raises
    ------
    CatalogueError
        ``root`` does not exist or is not a folder/prefix.
    """
    fs, base = require_source(root, storage_options=storage_options)
    found = fs.find(base, detail=True, withdirs=False)
    files = []
    for path, info in sorted(found.items()):
        relpath = posixpath.relpath(path, base)
        if not _may_be_audio(relpath, extensionless=extensionless):
            continue
        if info.get("islink") and fs.isdir(path):
            continue  # a link to a folder is not followed (it may lead back up the tree)
        version = info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified")
        files.append(
            AudioFile(
                uri=to_uri(fs, path),
                relpath=relpath,
                size_bytes=int(info.get("size") or 0),
                source_version=str(version).strip('"'),
            )
        )
    return files


def catalogue_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Build a catalogue DataFrame with exactly :data:`CATALOGUE_COLUMNS`, validated."""
    frame = pd.DataFrame.from_records(records, columns=list(CATALOGUE_COLUMNS))
    frame = frame.astype(CATALOGUE_COLUMNS)
    return validate_catalogue(frame)


def validate_catalogue(frame: pd.DataFrame) -> pd.DataFrame:
    """Check a catalogue before anything is planned from it; returns it unchanged.

    Raises
    ------
    CatalogueError
        Missing columns, empty or repeated URIs, repeated track ids or an unknown split.
    """
    missing = set(CATALOGUE_COLUMNS) - set(frame.columns)
    if missing:
        raise CatalogueError(f"catalogue lacks columns {sorted(missing)}")
    if frame["uri"].isna().any():
        raise CatalogueError("catalogue has tracks without a uri")
    repeated = frame["uri"][frame["uri"].duplicated()]
    if len(repeated):
        raise CatalogueError(f"catalogue lists {repeated.iloc[0]} more than once")
    ids = frame["track_id"].dropna()
    if ids.duplicated().any():
        raise CatalogueError(f"track id {ids[ids.duplicated()].iloc[0]} names two files")
    bad_split = set(frame["split"].dropna()) - set(SPLITS)
    if bad_split:
        raise CatalogueError(f"unknown split values {sorted(bad_split)}; expected {SPLITS}")
    return frame
