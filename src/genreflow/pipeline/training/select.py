"""Model selection that never looks at the test split: a hyper-parameter grid scored on validation,
and K-fold cross-validation for a mean ± std estimate (seed 002's grid, seed 003's folds), over the
dataset's own folds where it has them (UrbanSound8K)."""

from __future__ import annotations

import dataclasses
import itertools
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ParameterError
from ..models.architectures import Architecture, backbone_candidates
from ..patches import PatchReader
from ..store import StoreLayout
from .config import TrainConfig
from .data import LabelledTracks, labelled_tracks
from .evaluate import metrics, predict_tracks
from .fit import fit_backbone
from .probe import ProbeFeatures

_DATASET_NAMES = {"us8k": "UrbanSound8K"}
GRID_KEYS = {"lr": "learning_rate", "batch": "batch_size", "epochs": "epochs", "patience": "patience", "head": "head"}


def parse_grid(items: list[str], base: TrainConfig, *, backbone: str | None = None) -> list[TrainConfig]:
    """``["lr=1e-3,1e-4", "batch=32,64"]`` → one config per combination.

    Raises
    ------
    ParameterError
        An unknown key or a value that is not a number, or a ``backbone`` that is a linear probe.
    """
    if backbone is not None:
        refuse_probe_grid(backbone)
    axes = []
    for item in items:
        key, _, values = item.partition("=")
        if key not in GRID_KEYS or not values:
            raise ParameterError(f"--grid {item!r}: expected KEY=V1,V2 with KEY one of {', '.join(GRID_KEYS)}")
        field = GRID_KEYS[key]
        cast = {"learning_rate": float, "head": str}.get(field, int)  # a head TrainConfig checks by name
        try:
            axes.append([(field, cast(v)) for v in values.split(",")])
        except ValueError:
            raise ParameterError(f"--grid {item!r}: {values!r} are not all numbers") from None
    return [dataclasses.replace(base, **dict(combo)) for combo in itertools.product(*axes)]


def choose_config(grid: Sequence[TrainConfig], scores: Sequence[dict[str, Any]]) -> tuple[TrainConfig, dict[str, Any]]:
    """The grid point with the best validation accuracy (ties: macro-F1), and the card's record of
    every point and the choice."""
    best = max(range(len(grid)), key=lambda i: (scores[i]["accuracy"], scores[i]["macro_f1"]))
    points = [{**_grid_point(config), **score} for config, score in zip(grid, scores, strict=True)]
    return grid[best], {"grid": points, "chosen": _grid_point(grid[best])}


def _grid_point(config: TrainConfig) -> dict[str, Any]:
    return {
        "learning_rate": config.learning_rate,
        "batch_size": config.batch_size,
        "epochs": config.epochs,
        "head": config.head,
    }


def refuse_probe_grid(backbone: str) -> None:
    """A grid is scored on validation tracks, which a linear probe is fitted on: refuse it.

    Raises
    ------
    ParameterError
        ``backbone`` is a linear probe or ``auto``.
    """
    if all(arch.linear_probe for arch in backbone_candidates(backbone)):
        raise ParameterError(
            f"--grid tunes gradient training (lr, batch, epochs, patience); --backbone {backbone} is a linear probe "
            "that chooses its C by cross-validation inside train + valid: drop --grid"
        )


def validation_score(layout: StoreLayout, arch_name: str, config: TrainConfig) -> dict[str, Any]:
    """Fit on train, score tracks of valid: what a grid point is judged by."""
    refuse_probe_grid(arch_name)
    candidates = backbone_candidates(arch_name)
    data = labelled_tracks(layout, candidates[0].inputs, seed=config.seed, needed_by=arch_name)
    return _fit_and_score(candidates, layout, data, config, "valid")


def cross_validate(
    layout: StoreLayout,
    arch_name: str,
    config: TrainConfig,
    *,
    folds: int,
    features: ProbeFeatures | None = None,
) -> dict[str, Any]:
    """K folds of every labelled track (:func:`fold_assignment`): each fold is test once, the next one valid.

    Each fold fits what ``arch_name`` names as the registered model would be fitted (``auto``: every
    candidate probe, chosen inside the fold's train + valid tracks; ``features`` caches their tagger
    features across folds and for the run's final fit).

    Returns mean and standard deviation of accuracy and macro-F1 over folds, each fold's figures
    (with the architecture it fitted), and ``fold_source``: where the folds came from.
    """
    if folds < 3:
        raise ParameterError(f"--cv needs at least 3 folds (one test, one valid, the rest train), got {folds}")
    candidates = backbone_candidates(arch_name)
    data = labelled_tracks(layout, candidates[0].inputs, seed=config.seed, needed_by=arch_name)
    fold_of, fold_source = fold_assignment(data.table, folds, seed=config.seed)
    features = features or ProbeFeatures(batch_size=config.batch_size)
    results = []
    for k in range(folds):
        split = np.where(fold_of == k, "test", np.where(fold_of == (k + 1) % folds, "valid", "train"))
        fold = dataclasses.replace(data, table=data.table.assign(split=split), split_source=f"cv fold {k + 1}/{folds}")
        results.append(_fit_and_score(candidates, layout, fold, config, "test", features=features))
    summary: dict[str, Any] = {"folds": folds, "fold_source": fold_source, "per_fold": results}
    for key in ("accuracy", "macro_f1"):
        values = np.array([r[key] for r in results])
        summary[key] = {"mean": float(values.mean()), "std": float(values.std(ddof=1))}
    return summary


def fold_assignment(table: pd.DataFrame, folds: int, *, seed: int) -> tuple[np.ndarray, str]:
    """Each track's cross-validation fold (0 to K-1), and where the folds came from.

    Tracks with a dataset fold (``fold``: UrbanSound8K's ten) keep it, fold k being the dataset's
    k-th in order: slices of one recording share a fold, so they never land in both train and test,
    as the dataset's authors require, and K must be the number of those folds. Tracks without one
    (another dataset in the same store) are spread over the same K folds, stratified by label and
    seeded, as is every track of a store without dataset folds.

    Returns
    -------
    The fold index per row of ``table``, and ``"dataset"``, ``"stratified(seed=S)"`` or
    ``"dataset+stratified(seed=S)"``.

    Raises
    ------
    ParameterError
        K is not the number of dataset folds, fewer than 3 dataset folds, or a label with fewer
        tracks than K to stratify.
    """
    stratified = f"stratified(seed={seed})"
    has_fold = table["fold"].notna().to_numpy()
    if not has_fold.any():
        return _stratified_folds(table["label"].to_numpy(), folds, seed=seed), stratified
    dataset_folds = sorted({int(f) for f in table["fold"][has_fold]})
    names = sorted({_DATASET_NAMES.get(str(d), str(d)) for d in table["dataset"][has_fold].dropna()})
    given = f"these tracks come with {len(dataset_folds)} predefined folds ({', '.join(names) or 'dataset folds'})"
    if len(dataset_folds) < 3:
        raise ParameterError(f"{given}: cross-validation by fold needs 3 or more (one test, one valid, the rest train)")
    if folds != len(dataset_folds):
        raise ParameterError(f"--cv {folds}: {given}; cross-validation uses them: pass --cv {len(dataset_folds)}")
    position = {fold: k for k, fold in enumerate(dataset_folds)}
    fold_of = np.empty(len(table), dtype=int)
    fold_of[has_fold] = [position[int(f)] for f in table["fold"][has_fold]]
    if has_fold.all():
        return fold_of, "dataset"
    fold_of[~has_fold] = _stratified_folds(table["label"].to_numpy()[~has_fold], folds, seed=seed)
    return fold_of, f"dataset+{stratified}"


def _fit_and_score(
    candidates: Sequence[Architecture],
    layout: StoreLayout,
    data: LabelledTracks,
    config: TrainConfig,
    split: str,
    *,
    features: ProbeFeatures | None = None,
) -> dict[str, Any]:
    reader = PatchReader(layout, candidates[0], hop=config.patch_hop)
    with tempfile.TemporaryDirectory(prefix="genreflow-select-") as state:
        arch, result = fit_backbone(candidates, reader, data, config, Path(state), features=features)
    scored = data.split(split)
    y_true = scored["label"].map({name: i for i, name in enumerate(data.classes)}).to_numpy()
    figures = metrics(y_true, predict_tracks(result.model, reader, scored), data.classes)
    chosen = {"C": result.details["C"]} if arch.linear_probe else {}
    return {"accuracy": figures["accuracy"], "macro_f1": figures["macro_f1"], "n_tracks": figures["n_tracks"],
            "architecture": arch.name, **chosen}  # fmt: skip


def _stratified_folds(labels: np.ndarray, folds: int, *, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(labels), dtype=int)
    for label in np.unique(labels):
        index = rng.permutation(np.flatnonzero(labels == label))
        if len(index) < folds:
            raise ParameterError(f"label {label!r} has {len(index)} tracks: fewer than --cv {folds} folds")
        fold_of[index] = np.arange(len(index)) % folds
    return fold_of
