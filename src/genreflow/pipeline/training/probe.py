"""Linear probes: logistic regression on frozen tagger features, fitted on every non-test track.

C (and, for ``--backbone auto``, the backbone itself) is chosen by stratified K-fold
cross-validation inside train + valid, by log loss, and the kept probe is then refitted on all of
them: no labelled track outside the test split is left out of the final model. A probe reads one
vector per track (the mean of its patches' features), so the folds are folds of tracks and the
patches of one track never straddle two folds; tracks carrying a dataset fold (UrbanSound8K's
slices of one recording) keep that fold whole.

Log loss, not accuracy: the probabilities are the product. On separable data every C scores 100 %
and an accuracy rule would keep the most regularised fit, whose top probability on perfectly
classified tracks was under 0.5.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ParameterError
from ..models.architectures import Architecture, probe_backbone
from ..patches import PatchReader
from .config import TrainConfig
from .data import LabelledTracks
from .evaluate import track_outputs

FIT_SPLITS = ("train", "valid")  # what a probe is fitted on: everything but the test split


@dataclass(frozen=True)
class CScore:
    """One C's figures over the inner folds (mean and sample standard deviation)."""

    C: float
    log_loss_mean: float
    log_loss_std: float
    accuracy_mean: float
    accuracy_std: float


@dataclass(frozen=True)
class ProbeSelection:
    """One candidate probe's cross-validation: every C of the grid."""

    architecture: str
    n_features: int
    scores: tuple[CScore, ...]

    @property
    def best(self) -> CScore:
        """The lowest mean log loss; ties go to the smaller C (the more regularised fit)."""
        return min(self.scores, key=lambda score: (score.log_loss_mean, score.C))

    def to_card(self) -> dict[str, Any]:
        return {"architecture": self.architecture, "n_features": self.n_features, **asdict(self.best),
                "per_C": [asdict(score) for score in self.scores]}  # fmt: skip


@dataclass(frozen=True)
class InnerFolds:
    """Train/held-out track indices of each inner fold, and how they were drawn."""

    splits: tuple[tuple[np.ndarray, np.ndarray], ...]
    source: str


@dataclass(frozen=True)
class ProbeFit:
    """The kept probe: its architecture, the Keras model with the fitted head, what the card records."""

    arch: Architecture
    model: Any
    details: dict[str, Any]
    seconds: float


class ProbeFeatures:
    """Per-track frozen features of each tagger, computed once for a whole run and kept in memory.

    Every candidate, every C and every fold of a run (and the folds of ``--cv``) read the same
    vectors; a probe that puts two taggers side by side reads both taggers' cached vectors. Each
    tagger's features model is built once too and shared by the probe models built from it. One
    run reads one store: vectors are keyed by tagger, patch hop, track and feature-store row.
    """

    def __init__(self, *, batch_size: int = 64) -> None:
        self.batch_size = batch_size
        self.computed: dict[str, int] = {}  # tagger → tracks whose features were computed (not read from cache)
        self.seconds: dict[str, float] = {}  # tagger → seconds spent computing them
        self._vectors: dict[tuple[str, float, str, int], np.ndarray] = {}
        self._backbones: dict[str, Any] = {}
        self._on_patches: dict[str, Any] = {}  # tagger → its features model on store patches, traced once
        self._models: dict[tuple[str, int], Any] = {}

    def __getstate__(self) -> dict[str, Any]:  # travels to a Dask worker without its Keras models
        return {**self.__dict__, "_backbones": {}, "_on_patches": {}, "_models": {}}

    def of(self, arch: Architecture, reader: PatchReader, tracks: pd.DataFrame) -> np.ndarray:
        """The track-mean features ``arch`` reads, float32 [shape=(n_tracks, n_features)]."""
        return np.hstack([self._tagger(name, reader, tracks) for name in arch.probe_of])

    def model(self, arch: Architecture, n_classes: int) -> Any:
        """``arch``'s Keras probe on the shared tagger models (its head is set by the caller)."""
        key = (arch.name, n_classes)
        if key not in self._models:
            self._models[key] = arch.build(arch, n_classes, backbones={t: self._backbone(t) for t in arch.probe_of})
        return self._models[key]

    def _backbone(self, tagger: str) -> Any:
        if tagger not in self._backbones:
            self._backbones[tagger] = probe_backbone(tagger)
        return self._backbones[tagger]

    def _tagger(self, tagger: str, reader: PatchReader, tracks: pd.DataFrame) -> np.ndarray:
        keys = [(tagger, reader.hop, str(t), int(r)) for t, r in zip(tracks["track_id"], tracks["row"], strict=True)]
        missing = [i for i, key in enumerate(keys) if key not in self._vectors]
        if missing:
            started = time.perf_counter()
            values = track_outputs(self._features_on_patches(tagger), reader, tracks.iloc[missing], ["embedding"],
                                   batch_size=self.batch_size)  # fmt: skip
            for i, vector in zip(missing, values["embedding"], strict=True):
                self._vectors[keys[i]] = vector
            self.computed[tagger] = self.computed.get(tagger, 0) + len(missing)
            self.seconds[tagger] = self.seconds.get(tagger, 0.0) + time.perf_counter() - started
        return np.stack([self._vectors[key] for key in keys])

    def _features_on_patches(self, tagger: str) -> Any:
        if tagger not in self._on_patches:
            import keras
            from keras import layers

            from ..models import musicnn

            patches, frames_first = musicnn.store_patches()
            embedding = layers.Identity(name="embedding")(self._backbone(tagger)(frames_first))
            self._on_patches[tagger] = keras.Model(patches, embedding)
        return self._on_patches[tagger]


def inner_folds(tracks: pd.DataFrame, y: np.ndarray, classes: Sequence[str], *, folds: int, seed: int) -> InnerFolds:
    """Stratified K-fold of ``tracks`` (K lowered to the rarest label's count), seeded.

    Tracks with a dataset fold are grouped by it (a stratified group K-fold), so a recording's
    slices stay on one side; the others are each their own group.

    Raises
    ------
    ParameterError
        A label with fewer than two tracks to cross-validate on.
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    counts = np.bincount(y, minlength=len(classes))
    if counts.min() < 2:
        label = classes[int(counts.argmin())]
        raise ParameterError(
            f"label {label!r} has {counts.min()} train + valid tracks: a linear probe chooses C by "
            "cross-validation inside them, which needs at least 2 per label"
        )
    has_fold = tracks["fold"].notna().to_numpy()
    if has_fold.any():
        groups = np.where(has_fold, "fold " + tracks["fold"].astype(str), "track " + tracks["track_id"].astype(str))
        k = min(folds, len(set(groups)))
        splitter: Any = StratifiedGroupKFold(k, shuffle=True, random_state=seed)
        source = f"stratified group {k}-fold, dataset folds kept whole (seed={seed})"
    else:
        groups, k = None, min(folds, int(counts.min()))
        splitter = StratifiedKFold(k, shuffle=True, random_state=seed)
        source = f"stratified {k}-fold (seed={seed})"
    splits = tuple(splitter.split(np.zeros(len(y)), y, groups))
    return InnerFolds(splits, source)


def cross_validated_c(
    x: np.ndarray, y: np.ndarray, folds: InnerFolds, grid: Sequence[float], *, n_classes: int
) -> tuple[CScore, ...]:
    """Log loss and accuracy of each C on the held-out tracks of every fold.

    Within a fold the features are standardised on its training tracks (then put in the
    coordinates of :func:`_row_space`), and the C path runs from the most regularised fit up, each
    fit starting from the last (a warm start: the same optimum, fewer iterations). The fits are
    many and small, so BLAS runs them on one thread: more only contend (a fit took 10x longer on
    this 2-core machine while other work ran).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    losses = np.empty((len(folds.splits), len(grid)))
    accuracies = np.empty_like(losses)
    x = x.astype(np.float64)  # float32 probabilities do not sum to 1 closely enough for log_loss
    with threadpool_limits(1, user_api="blas"):
        for f, (train, held_out) in enumerate(folds.splits):
            scaler = StandardScaler().fit(x[train])
            x_train, x_held_out = scaler.transform(x[train]), scaler.transform(x[held_out])
            if (basis := _row_space(x_train)) is not None:
                x_train, x_held_out = x_train @ basis, x_held_out @ basis
            classifier = LogisticRegression(max_iter=2000, warm_start=True)
            for j in np.argsort(grid):
                classifier.set_params(C=grid[j]).fit(x_train, y[train])
                probabilities = np.zeros((len(held_out), n_classes))
                probabilities[:, classifier.classes_] = classifier.predict_proba(x_held_out)  # a class it lacks: 0
                losses[f, j] = log_loss(y[held_out], probabilities, labels=range(n_classes))
                accuracies[f, j] = np.mean(probabilities.argmax(axis=1) == y[held_out])
    return tuple(
        CScore(float(c), float(losses[:, j].mean()), float(losses[:, j].std(ddof=1)),
               float(accuracies[:, j].mean()), float(accuracies[:, j].std(ddof=1)))
        for j, c in enumerate(grid)
    )  # fmt: skip


def fit_linear_probes(
    candidates: Sequence[Architecture],
    reader: PatchReader,
    data: LabelledTracks,
    config: TrainConfig,
    features: ProbeFeatures,
) -> ProbeFit:
    """Cross-validate every candidate's C grid inside train + valid, keep the candidate and C of lowest
    mean log loss (ties: the earlier candidate, the smaller C), refit it on all those tracks and write
    it into the Keras model's softmax head. The test split is not touched here."""
    started = time.perf_counter()
    tracks = data.table[data.table["split"].isin(FIT_SPLITS)].reset_index(drop=True)
    y = tracks["label"].map({name: i for i, name in enumerate(data.classes)}).to_numpy()
    folds = inner_folds(tracks, y, data.classes, folds=config.probe_folds, seed=config.seed)
    selections = []
    for arch in candidates:
        x = features.of(arch, reader, tracks)
        scores = cross_validated_c(x, y, folds, config.linear_c, n_classes=len(data.classes))
        selections.append(ProbeSelection(arch.name, x.shape[1], scores))
    kept = min(range(len(candidates)), key=lambda i: selections[i].best.log_loss_mean)
    arch, chosen = candidates[kept], selections[kept].best
    model = features.model(arch, len(data.classes))
    _set_head(model, features.of(arch, reader, tracks), y, chosen.C, n_classes=len(data.classes))
    details: dict[str, Any] = {
        "classifier": "logistic regression on standardised track-mean features",
        "backbone": arch.name,
        "probe_of": list(arch.probe_of),
        "C": chosen.C,
        "C_grid": list(config.linear_c),
        "C_chosen_by": f"lowest mean log loss over the inner folds of the {len(tracks)} train + valid tracks "
        "(ties: smaller C)",
        "inner_cv": {"folds": len(folds.splits), "fold_source": folds.source, "n_tracks": len(tracks)},
        "refitted_on": {"splits": list(FIT_SPLITS), "n_tracks": len(tracks)},
        "selection": [asdict(score) for score in selections[kept].scores],
        "candidates": [selection.to_card() for selection in selections],
        # per tagger, in this run so far (its --cv folds included): each track once when the cache is shared
        "features_computed": {
            name: {"tracks": n, "seconds": round(features.seconds[name], 2)} for name, n in features.computed.items()
        },
    }
    if len(candidates) > 1:
        details["why"] = _why(selections, kept)
    return ProbeFit(arch, model, details, time.perf_counter() - started)


def _why(selections: Sequence[ProbeSelection], kept: int) -> str:
    best = selections[kept].best
    text = (f"{selections[kept].architecture}: the lowest inner cross-validated log loss of the {len(selections)} "
            f"candidates, {best.log_loss_mean:.4f} ± {best.log_loss_std:.4f} at C={best.C:g} "
            f"(accuracy {best.accuracy_mean:.3f})")  # fmt: skip
    others = sorted((s for i, s in enumerate(selections) if i != kept), key=lambda s: s.best.log_loss_mean)
    return text + f"; next {others[0].architecture} {others[0].best.log_loss_mean:.4f}"


def _set_head(model: Any, x: np.ndarray, y: np.ndarray, c: float, *, n_classes: int) -> None:
    """Fit the standardised logistic regression on every track and fold it into ``head_softmax``:
    softmax(W·(e - μ)/σ + b) is one Dense layer."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    scaler = StandardScaler().fit(x.astype(np.float64))
    x = scaler.transform(x.astype(np.float64))
    basis = _row_space(x)
    with threadpool_limits(1, user_api="blas"):
        classifier = LogisticRegression(C=c, max_iter=2000).fit(x if basis is None else x @ basis, y)
    coef, intercept = classifier.coef_ if basis is None else classifier.coef_ @ basis.T, classifier.intercept_
    if n_classes == 2:  # binary: softmax([0, z]) is sklearn's sigmoid(z)
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
    weights = (coef / scaler.scale_).T
    bias = intercept - (coef * scaler.mean_ / scaler.scale_).sum(axis=1)
    model.get_layer("head_softmax").set_weights([weights.astype(np.float32), bias.astype(np.float32)])


def _row_space(x: np.ndarray) -> np.ndarray | None:
    """Coordinates to fit a logistic regression in, [shape=(n_features, rank)]: an orthonormal basis
    of the span of ``x``'s rows where there are fewer tracks than features, else None (as they are).

    The L2-penalised solution lies in that span (its gradient always does: the representer theorem),
    so fitting on ``x @ basis`` and mapping the coefficients back with ``basis.T`` is the same fit:
    on 100 tracks of 1,706 features, a problem of 100 columns instead of 1,706.
    """
    if x.shape[0] >= x.shape[1]:
        return None
    _, singular, vt = np.linalg.svd(x, full_matrices=False)
    return vt[singular > singular[0] * 1e-10].T
