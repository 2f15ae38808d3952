"""GTZAN: ``genres/<genre>/<genre>.000NN.{wav,au}`` (or ``genres_original/``).

When the fault-filtered split lists (``train_filtered.txt``, ``valid_filtered.txt``,
``test_filtered.txt``, lines like ``blues/blues.00000.wav``) sit beside the genre folders or one
level up, they give the split; tracks they leave out (the known faulty ones) get no split.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from typing import Any

import pandas as pd

from ..errors import CatalogueError
from ..uri import filesystem, join
from .common import catalogue_frame, list_audio

GENRE_DIRS = ("genres", "genres_original", "Data/genres_original")
SPLIT_FILES = {"train": "train_filtered.txt", "valid": "valid_filtered.txt", "test": "test_filtered.txt"}
_NAME = re.compile(r"^(?P<genre>[^/]+)/(?P=genre)\.(?P<number>\d{5})\.[^./]+$")


def find_genre_dir(root: str, *, storage_options: Mapping[str, Any] | None = None) -> str | None:
    """The folder holding the genre sub-folders, or None when ``root`` is not a GTZAN copy."""
    fs, base = filesystem(root, storage_options)
    for candidate in ("", *GENRE_DIRS):
        path = join(base, candidate) if candidate else base
        if fs.isdir(path) and fs.glob(join(path, "*", "*.000[0-9][0-9].*")):
            return join(root, candidate) if candidate else root
    return None


def scan_gtzan(root: str, *, storage_options: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Catalogue of a GTZAN copy; ids are ``gtzan:<genre>.<NNNNN>``.

    Raises
    ------
    CatalogueError
        No genre folders, a file named against the GTZAN pattern, or a malformed split list.
    """
    genre_dir = find_genre_dir(root, storage_options=storage_options)
    if genre_dir is None:
        raise CatalogueError(f"{root}: no GTZAN genre folders (<genre>/<genre>.000NN.wav) found")
    splits = _read_splits(root, genre_dir, storage_options)
    records = []
    for audio in list_audio(genre_dir, storage_options=storage_options):
        match = _NAME.match(audio.relpath)
        if match is None:
            raise CatalogueError(f"{audio.uri}: not a GTZAN name (<genre>/<genre>.000NN.<ext>)")
        stem = f"{match['genre']}.{match['number']}"
        records.append(
            {
                "track_id": f"gtzan:{stem}",
                "uri": audio.uri,
                "dataset": "gtzan",
                "label": match["genre"],
                "split": splits.get(stem),
                "fold": None,
                "size_bytes": audio.size_bytes,
                "source_version": audio.source_version,
            }
        )
    return catalogue_frame(records)


def _read_splits(root: str, genre_dir: str, storage_options: Mapping[str, Any] | None) -> dict[str, str]:
    fs, _ = filesystem(root, storage_options)
    for folder in (genre_dir, root, posixpath.dirname(genre_dir.rstrip("/"))):
        paths = {split: join(folder, name) for split, name in SPLIT_FILES.items()}
        present = {split: p for split, p in paths.items() if fs.exists(filesystem(p, storage_options)[1])}
        if not present:
            continue
        if len(present) < len(paths):
            lacking = sorted(set(paths) - set(present))
            raise CatalogueError(f"{folder}: split lists incomplete, missing {[SPLIT_FILES[s] for s in lacking]}")
        return _parse_split_lists(present, storage_options)
    return {}


def _parse_split_lists(paths: dict[str, str], storage_options: Mapping[str, Any] | None) -> dict[str, str]:
    split_of: dict[str, str] = {}
    for split, path in paths.items():
        fs, inner = filesystem(path, storage_options)
        for number, line in enumerate(fs.cat_file(inner).decode().splitlines(), start=1):
            line = line.strip()
            if not line:
                continue
            match = _NAME.match(line)
            if match is None:
                raise CatalogueError(f"{path}, line {number}: expected <genre>/<genre>.000NN.wav, got {line!r}")
            stem = f"{match['genre']}.{match['number']}"
            if stem in split_of and split_of[stem] != split:
                raise CatalogueError(f"{path}, line {number}: {stem} is already in the {split_of[stem]} list")
            split_of[stem] = split
    return split_of
