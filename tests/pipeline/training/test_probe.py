"""Linear probes: C (and auto's backbone) by cross-validation inside train + valid, refitted on all of them."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from genreflow.pipeline.errors import ParameterError
from genreflow.pipeline.training.config import AUTO, AUTO_CANDIDATES, TrainConfig
from genreflow.pipeline.training.probe import cross_validated_c, inner_folds
from tests.pipeline.training.conftest import PROBE_GENRES, PROBE_TRACKS

GRID = (0.001, 0.01, 0.1, 1.0, 10.0)


def _blobs(n, noise, *, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(0, 3, (3, 20))
    y = np.arange(n) % 3
    return centres[y] + rng.normal(0, noise, (n, 20)), y


def _tracks(y, folds=None):
    return pd.DataFrame({"track_id": [f"t{i}" for i in range(len(y))], "fold": pd.array(folds or [None] * len(y),
                                                                                           dtype="Int64")})  # fmt: skip


def _best(scores):
    return min(scores, key=lambda s: (s.log_loss_mean, s.C))


def test_c_is_chosen_by_cross_validated_log_loss():
    x, y = _blobs(60, 0.5)
    folds = inner_folds(_tracks(y), y, ("a", "b", "c"), folds=5, seed=0)
    separable = cross_validated_c(x, y, folds, GRID, n_classes=3)
    assert [s.C for s in separable] == list(GRID) and all(s.accuracy_mean == 1.0 for s in separable)
    assert _best(separable).C >= 1.0  # every C is 100 % right; the sharpest probabilities win
    x, y = _blobs(120, 8.0)
    noisy = cross_validated_c(x, y, inner_folds(_tracks(y), y, ("a", "b", "c"), folds=5, seed=0), GRID, n_classes=3)
    assert _best(noisy).C < _best(separable).C  # overlapping classes: confident fits pay in log loss
    assert all(s.log_loss_std > 0 for s in noisy)  # figures of 5 folds, not one


def test_inner_folds_are_stratified_folds_of_tracks_and_keep_dataset_folds_whole():
    y = np.repeat([0, 1, 2], [6, 6, 3])
    folds = inner_folds(_tracks(y), y, ("a", "b", "c"), folds=5, seed=1)
    assert len(folds.splits) == 3 and folds.source == "stratified 3-fold (seed=1)"  # the rarest label has 3
    held_out = np.concatenate([test for _, test in folds.splits])
    assert sorted(held_out) == list(range(len(y)))  # each track held out exactly once
    for train, test in folds.splits:
        assert set(y[train]) == {0, 1, 2} and not set(train) & set(test)
    dataset_fold = [1, 1, 2, 2, 3, 3, 4, 4, 1, 2, 3, 4]  # two recordings' slices per fold
    y = np.array([0, 1] * 6)
    folds = inner_folds(_tracks(y, dataset_fold), y, ("a", "b"), folds=3, seed=0)
    assert "dataset folds kept whole" in folds.source
    for train, test in folds.splits:
        assert not {dataset_fold[i] for i in train} & {dataset_fold[i] for i in test}
    with pytest.raises(ParameterError, match=r"label 'b' has 1 train \+ valid tracks"):
        inner_folds(_tracks(np.array([0, 0, 1])), np.array([0, 0, 1]), ("a", "b"), folds=5, seed=0)


def test_auto_computes_each_taggers_features_once_and_keeps_the_lowest_log_loss(musicnn_store, tmp_path):
    """Every candidate probe on real tagger features: five candidates, four taggers, each track once."""
    import keras

    from genreflow.pipeline.models.architectures import backbone_candidates
    from genreflow.pipeline.patches import PatchReader
    from genreflow.pipeline.training.data import labelled_tracks
    from genreflow.pipeline.training.evaluate import predict_tracks
    from genreflow.pipeline.training.fit import fit_backbone
    from genreflow.pipeline.training.probe import ProbeFeatures
    from genreflow.pipeline.training.select import cross_validate

    candidates = backbone_candidates(AUTO)
    data = labelled_tracks(musicnn_store, ["musicnn96"])
    reader = PatchReader(musicnn_store, candidates[0])
    features = ProbeFeatures()
    config = TrainConfig(probe_folds=3)
    arch, result = fit_backbone(candidates, reader, data, config, tmp_path, features=features)
    fit = result.details
    fitted_on = data.table[data.table["split"] != "test"].reset_index(drop=True)
    n = len(fitted_on)
    assert n == len(PROBE_GENRES) * (PROBE_TRACKS - 1)  # train + valid, no test track
    assert features.computed == {"musicnn-msd": n, "musicnn-mtt": n, "vgg-msd": n, "vgg-mtt": n}
    assert [c["architecture"] for c in fit["candidates"]] == list(AUTO_CANDIDATES)
    assert (
        fit["candidates"][-1]["n_features"] == fit["candidates"][0]["n_features"] + fit["candidates"][2]["n_features"]
    )
    best = min(fit["candidates"], key=lambda c: c["log_loss_mean"])
    assert arch.name == fit["backbone"] == best["architecture"] and fit["C"] == best["C"] and arch.name in fit["why"]
    assert fit["C"] == min(fit["selection"], key=lambda s: (s["log_loss_mean"], s["C"]))["C"]
    assert fit["inner_cv"]["folds"] == 3 and fit["refitted_on"]["n_tracks"] == n

    # the head is the logistic regression refitted on every train + valid track, scaler folded in
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x = features.of(arch, reader, fitted_on)
    y = fitted_on["label"].map({name: i for i, name in enumerate(data.classes)}).to_numpy()
    scaler = StandardScaler().fit(x)
    expected = LogisticRegression(C=fit["C"], max_iter=2000).fit(scaler.transform(x), y).predict_proba(
        scaler.transform(x))  # fmt: skip
    head = keras.Sequential([keras.Input((x.shape[1],)), result.model.get_layer("head_softmax")])
    np.testing.assert_allclose(head.predict(x, verbose=0), expected, atol=1e-4)
    test = data.split("test")
    assert predict_tracks(result.model, reader, test).argmax(axis=1).tolist() == [
        data.classes.index(label) for label in test["label"]
    ]  # held-out synthetic genres: the registered Keras model gets them right

    cv = cross_validate(musicnn_store, AUTO, dataclasses.replace(config, probe_folds=2), folds=3, features=features)
    total = len(data.table)
    assert features.computed == dict.fromkeys(("musicnn-msd", "musicnn-mtt", "vgg-msd", "vgg-mtt"), total)
    assert len(cv["per_fold"]) == 3 and all(f["architecture"] in AUTO_CANDIDATES for f in cv["per_fold"])
    assert sum(f["n_tracks"] for f in cv["per_fold"]) == total


def test_a_grid_is_refused_for_probes_whose_validation_tracks_they_fit_on():
    from genreflow.pipeline.training.select import parse_grid

    for backbone in (AUTO, "vgg-msd-linear"):
        with pytest.raises(ParameterError, match=f"--backbone {backbone} is a linear probe.*drop --grid"):
            parse_grid(["lr=1e-3,1e-4"], TrainConfig(), backbone=backbone)
    assert len(parse_grid(["lr=1e-3,1e-4"], TrainConfig(), backbone="cnn1")) == 2
