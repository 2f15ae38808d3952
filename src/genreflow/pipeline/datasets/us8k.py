"""UrbanSound8K: ``audio/fold<k>/<slice>.wav`` with ``metadata/UrbanSound8K.csv`` (class, fold).

Clips are at most 4 s, so this dataset's default clip window is 4 s. The ten folds are the split:
evaluate by fold, never mix a fold's slices across train and test.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

import pandas as pd

from ..errors import CatalogueError
from ..uri import filesystem, join
from .common import catalogue_frame, list_audio

METADATA = "metadata/UrbanSound8K.csv"
REQUIRED = ("slice_file_name", "fold", "class")
DEFAULT_WINDOW_S = 4.0


def scan_us8k(root: str, *, storage_options: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Catalogue of an UrbanSound8K copy; ids are ``us8k:<slice name without extension>``.

    Raises
    ------
    CatalogueError
        Metadata missing or lacking columns, or a file in a fold folder other than its metadata's.
    """
    metadata = _read_metadata(join(root, METADATA), storage_options)
    records = []
    for audio in list_audio(join(root, "audio"), storage_options=storage_options):
        folder, name = posixpath.split(audio.relpath)
        row = metadata.get(name)
        if row is not None and folder != f"fold{row['fold']}":
            raise CatalogueError(f"{audio.uri}: metadata puts {name} in fold{row['fold']}, not {folder}")
        records.append(
            {
                "track_id": f"us8k:{posixpath.splitext(name)[0]}",
                "uri": audio.uri,
                "dataset": "us8k",
                "label": None if row is None else row["class"],
                "split": None,
                "fold": None if row is None else int(row["fold"]),
                "size_bytes": audio.size_bytes,
                "source_version": audio.source_version,
            }
        )
    return catalogue_frame(records)


def _read_metadata(path: str, storage_options: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    fs, inner = filesystem(path, storage_options)
    if not fs.exists(inner):
        raise CatalogueError(f"{path}: not found (UrbanSound8K needs metadata/UrbanSound8K.csv)")
    with fs.open(inner, "rb") as handle:
        frame = pd.read_csv(handle)
    absent = [c for c in REQUIRED if c not in frame.columns]
    if absent:
        raise CatalogueError(f"{path}: missing columns {absent}")
    if not pd.api.types.is_integer_dtype(frame["fold"]):
        raise CatalogueError(f"{path}: column 'fold' must hold integers 1-10")
    return frame.set_index("slice_file_name")[["fold", "class"]].to_dict("index")
