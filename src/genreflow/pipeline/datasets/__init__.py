"""Catalogue adapters: each turns a dataset layout into rows of the catalogue schema.

``scan_catalogue(root, dataset="auto")`` picks the adapter from markers in the folder: FMA's
``fma_metadata/tracks.csv``, UrbanSound8K's ``metadata/UrbanSound8K.csv``, GTZAN's
``<genre>/<genre>.000NN.*`` names, else a folder per label when every file sits one folder deep,
else an unlabelled drop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from ..errors import ParameterError
from ..ingest_config import DATASETS, DEFAULT_DATASET, DEFAULT_FMA_SUBSET
from ..uri import filesystem, join
from .common import CATALOGUE_COLUMNS, SPLITS, AudioFile, list_audio, require_source, source_uri, validate_catalogue
from .fma import scan_fma
from .folder import is_folder_per_label, scan_folder, scan_unlabelled
from .gtzan import find_genre_dir, scan_gtzan
from .us8k import DEFAULT_WINDOW_S as US8K_WINDOW_S
from .us8k import scan_us8k

DEFAULT_WINDOW_S = {"us8k": US8K_WINDOW_S}


def detect_dataset(root: str, *, storage_options: Mapping[str, Any] | None = None) -> str:
    """Name of the layout found at ``root`` (one of :data:`DATASETS`)."""
    fs, base = filesystem(root, storage_options)
    if fs.exists(join(base, "fma_metadata/tracks.csv")):
        return "fma"
    if fs.exists(join(base, "metadata/UrbanSound8K.csv")):
        return "us8k"
    if find_genre_dir(root, storage_options=storage_options) is not None:
        return "gtzan"
    if is_folder_per_label(root, storage_options=storage_options):
        return "folder"
    return "unlabelled"


def scan_catalogue(
    root: str,
    *,
    dataset: str = DEFAULT_DATASET,
    fma_subset: str = DEFAULT_FMA_SUBSET,
    storage_options: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """List the tracks of a catalogue in the catalogue schema (:data:`CATALOGUE_COLUMNS`)."""
    if dataset == "auto":
        dataset = detect_dataset(root, storage_options=storage_options)
    if dataset == "fma":
        return scan_fma(root, subset=fma_subset, storage_options=storage_options)
    scanners = {"gtzan": scan_gtzan, "us8k": scan_us8k, "folder": scan_folder, "unlabelled": scan_unlabelled}
    if dataset not in scanners:
        raise ParameterError(f"unknown dataset {dataset!r}; expected auto or one of {DATASETS}")
    return scanners[dataset](root, storage_options=storage_options)


__all__ = [
    "CATALOGUE_COLUMNS",
    "DATASETS",
    "DEFAULT_WINDOW_S",
    "SPLITS",
    "AudioFile",
    "detect_dataset",
    "list_audio",
    "require_source",
    "scan_catalogue",
    "scan_fma",
    "scan_folder",
    "scan_gtzan",
    "scan_unlabelled",
    "scan_us8k",
    "source_uri",
    "validate_catalogue",
]
