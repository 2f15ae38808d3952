"""Plain folders: ``<root>/<label>/<files>`` (seed 000's layout) or an unlabelled drop of files.

Neither layout has ids of its own, so a track's id is its content hash, assigned when the file is
read (``track_id`` is null here): the same audio delivered twice under two names is one track.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

import pandas as pd

from ..errors import CatalogueError
from .common import AudioFile, catalogue_frame, list_audio


def scan_folder(root: str, *, storage_options: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Catalogue of a folder-per-label tree: every audio file sits in ``<label>/``.

    Raises
    ------
    CatalogueError
        Audio found outside a label folder or nested deeper than one level.
    """
    records = []
    for audio in list_audio(root, storage_options=storage_options):
        parts = audio.relpath.split("/")
        if len(parts) != 2:
            raise CatalogueError(
                f"{audio.uri}: folder layout needs <label>/<file>, found {audio.relpath!r} "
                "(use --dataset unlabelled for a drop without labels)"
            )
        records.append(_record(audio, dataset="folder", label=parts[0]))
    return catalogue_frame(records)


def scan_unlabelled(root: str, *, storage_options: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Catalogue of every audio file under ``root`` at any depth, with no labels."""
    return catalogue_frame(
        [
            _record(audio, dataset="unlabelled", label=None)
            for audio in list_audio(root, storage_options=storage_options, extensionless=True)
        ]
    )


def is_folder_per_label(root: str, *, storage_options: Mapping[str, Any] | None = None) -> bool:
    """True when every audio file is exactly one folder deep and there are two folders or more."""
    files = list_audio(root, storage_options=storage_options)
    depths = {len(f.relpath.split("/")) for f in files}
    labels = {posixpath.dirname(f.relpath) for f in files}
    return depths == {2} and len(labels) >= 2


def _record(audio: AudioFile, *, dataset: str, label: str | None) -> dict[str, Any]:
    return {
        "track_id": None,
        "uri": audio.uri,
        "dataset": dataset,
        "label": label,
        "split": None,
        "fold": None,
        "size_bytes": audio.size_bytes,
        "source_version": audio.source_version,
    }
