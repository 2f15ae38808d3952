"""The labelled tracks a model learns from, and their train/valid/test split."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ParameterError
from ..store import StoreLayout, current_tracks, read_manifest, require_feature_sets, require_tracks

SPLITS = ("train", "valid", "test")
COLUMNS = ("track_id", "uri", "dataset", "label", "split", "fold", "row", "valid_s")
_SPLIT_ALIASES = {"training": "train", "train": "train", "validation": "valid", "valid": "valid", "test": "test"}


@dataclass(frozen=True)
class LabelledTracks:
    """The tracks a model learns from: one row each with ``track_id, uri, dataset, label, split, fold, row, valid_s``.

    ``fold`` is the dataset's own fold (UrbanSound8K), null elsewhere; cross-validation keeps it.
    ``excluded`` counts the labelled tracks a dataset's own split leaves out (GTZAN's faulty tracks,
    FMA tracks without a ``set.split``): they are neither trained on nor scored, and the card says how many.
    """

    table: pd.DataFrame
    classes: tuple[str, ...]
    split_source: str  # "dataset", "folds" or "stratified(seed=K)"; "<dataset>: <source>; ..." when they differ
    split_sources: Mapping[str, str] = field(default_factory=dict)  # the same, per dataset
    excluded: int = 0

    def split(self, name: str) -> pd.DataFrame:
        return self.table[self.table["split"] == name].reset_index(drop=True)

    def counts(self) -> dict[str, int]:
        return {name: int((self.table["split"] == name).sum()) for name in SPLITS}

    def summary(self) -> dict[str, Any]:
        """What a model card records of its data: where the split came from, its sizes, what it left out."""
        return {"split_source": self.split_source, "split_sources": dict(self.split_sources),
                "counts": self.counts(), "excluded_by_split": self.excluded, "classes": list(self.classes)}  # fmt: skip


def labelled_tracks(
    layout: StoreLayout,
    feature_sets: Sequence[str],
    *,
    seed: int = 0,
    fractions: tuple[float, float] = (0.15, 0.15),
    needed_by: str = "the model",
) -> LabelledTracks:
    """Every ``ok`` labelled track that has ``feature_sets``, with a train/valid/test split.

    Each dataset of the store (manifest ``dataset``) is split by its own rule:

    - it has a split (some tracks carry one: FMA ``set.split``, GTZAN's fault-filtered lists): that
      split, and its tracks without one are left out, counted in ``excluded``; those lists leave the
      faulty tracks out on purpose, so they must not come back through a random split. Validation
      is carved out of train when the dataset has only train and test;
    - it has folds (UrbanSound8K): test = last fold, valid = the one before, tracks without a fold left out;
    - otherwise its tracks join the others without a split of their own in one stratified random
      split, seeded, of ``fractions`` (valid, test).

    Raises
    ------
    ParameterError
        Fewer than two labels, a label with too few tracks to appear in every split, a dataset
        split without train or test tracks, or fewer than three dataset folds.
    StoreError
        No tracks, or none stored with ``feature_sets`` (the message names the set ``needed_by``
        reads and the ingest command that adds it).
    """
    require_tracks(layout)
    manifest = read_manifest(layout)
    require_feature_sets(manifest, feature_sets, root=layout.root, needed_by=needed_by)
    tracks = current_tracks(manifest)
    has_sets = tracks["feature_sets"].map(lambda names: set(feature_sets) <= set(names))
    tracks = tracks[(tracks["status"] == "ok") & tracks["label"].notna() & has_sets].reset_index(drop=True)
    datasets = tracks["dataset"].astype(object).where(tracks["dataset"].notna(), "(unknown)")
    split = pd.Series(None, index=tracks.index, dtype=object)
    sources: dict[str, str] = {}
    for name, index in tracks.groupby(datasets, sort=True).groups.items():
        own, source = _dataset_split(tracks.loc[index], str(name))
        if own is not None:
            split.loc[index] = own
            sources[str(name)] = source
    rest = tracks.index[~datasets.isin(list(sources))]
    if len(rest):
        labels = tracks.loc[rest, "label"].reset_index(drop=True)
        split.loc[rest] = _stratified_split(labels, seed=seed, fractions=fractions)
        sources.update(dict.fromkeys(sorted(set(datasets[rest])), f"stratified(seed={seed})"))
    kept = split.notna()
    table = tracks[kept].assign(split=split[kept])[list(COLUMNS)]
    table = table.astype({"row": "int64", "valid_s": "float64", "fold": "Int64"}).reset_index(drop=True)
    classes = tuple(sorted(table["label"].unique()))
    if len(classes) < 2:
        raise ParameterError(f"{layout.root}: training needs at least two labels, found {list(classes)}")
    sources = dict(sorted(sources.items()))
    distinct = set(sources.values())
    source = distinct.pop() if len(distinct) == 1 else "; ".join(f"{d}: {s}" for d, s in sources.items())
    return LabelledTracks(table, classes, source, sources, excluded=int((~kept).sum()))


def _dataset_split(tracks: pd.DataFrame, dataset: str) -> tuple[pd.Series | None, str]:
    """One dataset's own split (None for a track it leaves out), or None when it has neither split nor folds."""
    normalised = tracks["split"].map(lambda s: _SPLIT_ALIASES.get(str(s).lower()) if pd.notna(s) else None)
    normalised = normalised.astype(object)
    if normalised.notna().any():
        lacking = [name for name in ("train", "test") if not (normalised == name).any()]
        if lacking:
            found = {name: int((normalised == name).sum()) for name in SPLITS}
            raise ParameterError(
                f"{dataset}: the dataset's own split has no {' or '.join(lacking)} tracks ({found}); "
                "ingest the tracks its split lists name"
            )
        if not (normalised == "valid").any():  # carve validation out of train, deterministically
            train = normalised.index[normalised == "train"]
            normalised.loc[train[::7]] = "valid"
        return normalised, "dataset"
    if tracks["fold"].notna().any():
        folds = sorted(int(f) for f in tracks["fold"].dropna().unique())
        if len(folds) < 3:
            raise ParameterError(
                f"{dataset}: the tracks come from {len(folds)} predefined folds {folds}; a split by fold needs "
                "at least 3 (test, valid, train), and mixing a fold across splits leaks its recordings"
            )
        role = {folds[-1]: "test", folds[-2]: "valid"}
        return tracks["fold"].map(lambda f: None if pd.isna(f) else role.get(int(f), "train")).astype(object), "folds"
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
