"""The labelled tracks a model learns from, and their train/valid/test split."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import ParameterError
from ..store import StoreLayout, current_tracks, read_manifest

SPLITS = ("train", "valid", "test")
_SPLIT_ALIASES = {"training": "train", "train": "train", "validation": "valid", "valid": "valid", "test": "test"}


@dataclass(frozen=True)
class LabelledTracks:
    """The tracks a model learns from: one row each with ``track_id, uri, label, split, row, valid_s``."""

    table: pd.DataFrame
    classes: tuple[str, ...]
    split_source: str  # "dataset" or "stratified(seed=K)" or "folds"

    def split(self, name: str) -> pd.DataFrame:
        return self.table[self.table["split"] == name].reset_index(drop=True)

    def counts(self) -> dict[str, int]:
        return {name: int((self.table["split"] == name).sum()) for name in SPLITS}


def labelled_tracks(
    layout: StoreLayout,
    feature_sets: Sequence[str],
    *,
    seed: int = 0,
    fractions: tuple[float, float] = (0.15, 0.15),
) -> LabelledTracks:
    """Every ``ok`` labelled track that has ``feature_sets``, with a train/valid/test split.

    The dataset's own split is used where it has one for every track (FMA ``split``, GTZAN's
    fault-filtered lists); UrbanSound8K folds give test = last fold, valid = the one before;
    otherwise a stratified random split, seeded, of ``fractions`` (valid, test).

    Raises
    ------
    ParameterError
        Fewer than two labels, or a label with too few tracks to appear in every split.
    """
    manifest = read_manifest(layout)
    if manifest.empty:
        raise ParameterError(f"{layout.root}: the store has no tracks yet (run `genreflow ingest`)")
    tracks = current_tracks(manifest)
    has_sets = tracks["feature_sets"].map(lambda names: set(feature_sets) <= set(names))
    tracks = tracks[(tracks["status"] == "ok") & tracks["label"].notna() & has_sets].reset_index(drop=True)
    classes = tuple(sorted(tracks["label"].unique()))
    if len(classes) < 2:
        raise ParameterError(f"{layout.root}: training needs at least two labels, found {list(classes)}")
    split, source = _dataset_split(tracks)
    if split is None:
        split, source = _stratified_split(tracks["label"], seed=seed, fractions=fractions), f"stratified(seed={seed})"
    table = tracks.assign(split=split)[["track_id", "uri", "label", "split", "row", "valid_s"]]
    table = table.astype({"row": "int64", "valid_s": "float64"})
    return LabelledTracks(table, classes, source)


def _dataset_split(tracks: pd.DataFrame) -> tuple[pd.Series | None, str]:
    normalised = tracks["split"].map(lambda s: _SPLIT_ALIASES.get(str(s).lower()) if pd.notna(s) else None)
    if normalised.notna().all() and set(normalised) >= {"train", "test"}:
        if "valid" not in set(normalised):  # carve validation out of train, deterministically
            normalised = normalised.copy()
            train = normalised.index[normalised == "train"]
            normalised.loc[train[::7]] = "valid"
        return normalised, "dataset"
    if tracks["fold"].notna().all() and tracks["fold"].nunique() >= 3:
        folds = sorted(tracks["fold"].unique())
        split = tracks["fold"].map(lambda f: "test" if f == folds[-1] else "valid" if f == folds[-2] else "train")
        return split, "folds"
    return None, ""


def _stratified_split(labels: pd.Series, *, seed: int, fractions: tuple[float, float]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    split = np.full(len(labels), "train", dtype=object)
    for label, index in labels.groupby(labels).groups.items():
        index = rng.permutation(np.asarray(index))
        n_valid = max(1, round(fractions[0] * len(index)))
        n_test = max(1, round(fractions[1] * len(index)))
        if len(index) < n_valid + n_test + 1:
            raise ParameterError(f"label {label!r} has {len(index)} tracks: too few for train, valid and test")
        split[index[:n_test]] = "test"
        split[index[n_test : n_test + n_valid]] = "valid"
    return split
