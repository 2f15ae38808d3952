"""FMA: ``fma_<subset>/<tid[:3]>/<tid>.mp3`` with ``fma_metadata/tracks.csv``.

``tracks.csv`` has two header rows (a column MultiIndex) and the track id as index. The label is
``('track', 'genre_top')``, the split ``('set', 'split')`` and the subset ``('set', 'subset')``;
subsets nest (small ⊂ medium ⊂ large), so ``medium`` keeps small and medium tracks.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

import pandas as pd

from ..errors import CatalogueError, ParameterError
from ..ingest_config import DEFAULT_FMA_SUBSET
from ..ingest_config import FMA_SUBSETS as SUBSETS
from ..uri import filesystem, join
from .common import catalogue_frame, list_audio

METADATA = "fma_metadata/tracks.csv"
_COLUMNS = {"label": ("track", "genre_top"), "split": ("set", "split"), "subset": ("set", "subset")}
_SPLITS = {"training": "train", "validation": "valid", "test": "test"}


def scan_fma(
    root: str, *, subset: str = DEFAULT_FMA_SUBSET, storage_options: Mapping[str, Any] | None = None
) -> pd.DataFrame:
    """Catalogue of an FMA copy; ids are ``fma:<tid>`` (six digits).

    Raises
    ------
    ParameterError
        Unknown subset.
    CatalogueError
        ``tracks.csv`` or the audio folder missing, or a required column absent.
    """
    if subset not in SUBSETS:
        raise ParameterError(f"unknown FMA subset {subset!r}; expected one of {SUBSETS}")
    metadata = read_tracks_csv(join(root, METADATA), storage_options=storage_options)
    allowed = set(SUBSETS[: SUBSETS.index(subset) + 1])
    metadata = metadata[metadata["subset"].isin(allowed)]
    records = []
    for audio in list_audio(join(root, f"fma_{subset}"), storage_options=storage_options):
        stem = posixpath.splitext(posixpath.basename(audio.relpath))[0]
        if not stem.isdigit():
            continue  # FMA archives hold README/checksums beside the audio
        tid = int(stem)
        row = metadata.loc[tid] if tid in metadata.index else None
        records.append(
            {
                "track_id": f"fma:{tid:06d}",
                "uri": audio.uri,
                "dataset": "fma",
                "label": None if row is None or pd.isna(row["label"]) else row["label"],
                "split": None if row is None else _SPLITS.get(row["split"]),
                "fold": None,
                "size_bytes": audio.size_bytes,
                "source_version": audio.source_version,
            }
        )
    return catalogue_frame(records)


def read_tracks_csv(path: str, *, storage_options: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """``label``, ``split`` and ``subset`` per track id from FMA's two-header-row ``tracks.csv``."""
    fs, inner = filesystem(path, storage_options)
    if not fs.exists(inner):
        raise CatalogueError(f"{path}: not found (FMA needs fma_metadata/tracks.csv beside fma_<subset>/)")
    try:
        with fs.open(inner, "rb") as handle:
            raw = pd.read_csv(handle, index_col=0, header=[0, 1], low_memory=False)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
        raise CatalogueError(f"{path}: not a readable FMA tracks.csv ({error})") from error
    absent = [".".join(col) for col in _COLUMNS.values() if col not in raw.columns]
    if absent:
        raise CatalogueError(f"{path}: missing columns {absent} (expected FMA's two header rows)")
    frame = pd.DataFrame({name: raw[col] for name, col in _COLUMNS.items()})
    try:
        frame.index = frame.index.astype(int)
    except (TypeError, ValueError) as error:
        raise CatalogueError(f"{path}: track ids in the first column must be integers ({error})") from error
    return frame
