"""Model selection that never looks at the test split: a hyper-parameter grid scored on validation,
and K-fold cross-validation for a mean ± std estimate (seed 002's grid, seed 003's folds)."""

from __future__ import annotations

import dataclasses
import itertools
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ParameterError
from ..models.architectures import Architecture, get_architecture
from ..patches import PatchReader
from ..store import StoreLayout
from .data import LabelledTracks, labelled_tracks
from .evaluate import metrics, predict_tracks
from .fit import TrainConfig, fit

GRID_KEYS = {"lr": "learning_rate", "batch": "batch_size", "epochs": "epochs", "patience": "patience"}


def parse_grid(items: list[str], base: TrainConfig) -> list[TrainConfig]:
    """``["lr=1e-3,1e-4", "batch=32,64"]`` → one config per combination.

    Raises
    ------
    ParameterError
        An unknown key or a value that is not a number.
    """
    axes = []
    for item in items:
        key, _, values = item.partition("=")
        if key not in GRID_KEYS or not values:
            raise ParameterError(f"--grid {item!r}: expected KEY=V1,V2 with KEY one of {', '.join(GRID_KEYS)}")
        field = GRID_KEYS[key]
        cast = float if field == "learning_rate" else int
        try:
            axes.append([(field, cast(v)) for v in values.split(",")])
        except ValueError:
            raise ParameterError(f"--grid {item!r}: {values!r} are not all numbers") from None
    return [dataclasses.replace(base, **dict(combo)) for combo in itertools.product(*axes)]


def validation_score(layout: StoreLayout, arch_name: str, config: TrainConfig) -> dict[str, Any]:
    """Fit on train, score tracks of valid: what a grid point is judged by."""
    arch = get_architecture(arch_name)
    data = labelled_tracks(layout, arch.inputs, seed=config.seed)
    return _fit_and_score(arch, layout, data, config, "valid")


def cross_validate(layout: StoreLayout, arch_name: str, config: TrainConfig, *, folds: int) -> dict[str, Any]:
    """K stratified folds of every labelled track: each fold is test once, the next one valid.

    Returns mean and standard deviation of accuracy and macro-F1 over folds, and each fold's figures.
    """
    if folds < 3:
        raise ParameterError(f"--cv needs at least 3 folds (one test, one valid, the rest train), got {folds}")
    arch = get_architecture(arch_name)
    data = labelled_tracks(layout, arch.inputs, seed=config.seed)
    fold_of = _stratified_folds(data.table["label"].to_numpy(), folds, seed=config.seed)
    results = []
    for k in range(folds):
        split = np.where(fold_of == k, "test", np.where(fold_of == (k + 1) % folds, "valid", "train"))
        fold = LabelledTracks(data.table.assign(split=split), data.classes, f"cv fold {k + 1}/{folds}")
        results.append(_fit_and_score(arch, layout, fold, config, "test"))
    summary = {"folds": folds, "per_fold": results}
    for key in ("accuracy", "macro_f1"):
        values = np.array([r[key] for r in results])
        summary[key] = {"mean": float(values.mean()), "std": float(values.std(ddof=1))}
    return summary


def _fit_and_score(
    arch: Architecture, layout: StoreLayout, data: LabelledTracks, config: TrainConfig, split: str
) -> dict[str, Any]:
    reader = PatchReader(layout, arch)
    with tempfile.TemporaryDirectory(prefix="genreflow-select-") as state:
        result = fit(arch, reader, data, config, Path(state))
    scored = data.split(split)
    y_true = scored["label"].map({name: i for i, name in enumerate(data.classes)}).to_numpy()
    figures = metrics(y_true, predict_tracks(result.model, reader, scored), data.classes)
    return {"accuracy": figures["accuracy"], "macro_f1": figures["macro_f1"], "n_tracks": figures["n_tracks"]}


def _stratified_folds(labels: np.ndarray, folds: int, *, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(labels), dtype=int)
    for label in np.unique(labels):
        index = rng.permutation(np.flatnonzero(labels == label))
        if len(index) < folds:
            raise ParameterError(f"label {label!r} has {len(index)} tracks: fewer than --cv {folds} folds")
        fold_of[index] = np.arange(len(index)) % folds
    return fold_of
