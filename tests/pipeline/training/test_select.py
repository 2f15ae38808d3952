import numpy as np
import pandas as pd
import pytest

from genreflow.pipeline.errors import ParameterError
from genreflow.pipeline.training import select
from genreflow.pipeline.training.config import TrainConfig


def _us8k(folds=(1, 2, 3, 4), per_fold=4):
    return [{"track_id": f"us8k:{f}-{i}", "dataset": "us8k", "label": ("dog_bark", "siren")[i % 2], "fold": f}
            for f in folds for i in range(per_fold)]  # fmt: skip


@pytest.fixture
def fitted(monkeypatch):
    """Stands in for fitting a model: records each fold's tracks, scores by how many it tests."""
    seen = []

    def fake_fit_and_score(candidates, layout, data, config, split, **_):
        seen.append(data.table.copy())
        n = len(data.split(split))
        return {"accuracy": n / 10, "macro_f1": n / 20, "n_tracks": n}

    monkeypatch.setattr(select, "_fit_and_score", fake_fit_and_score)
    return seen


def test_cv_on_us8k_leaves_one_predefined_fold_out(make_store, fitted):
    summary = select.cross_validate(make_store(_us8k()), "cnn1", TrainConfig(), folds=4)

    def folds_in(table, split):  # the recording's fold, from its id (us8k:<fold>-<i>)
        return set(table.loc[table["split"] == split, "track_id"].str.extract(r":(\d+)-")[0].astype(int))

    test_folds = [folds_in(table, "test") for table in fitted]
    assert test_folds == [{1}, {2}, {3}, {4}]  # no fold's slices in both train and test
    valid_folds = [folds_in(table, "valid") for table in fitted]
    assert valid_folds == [{2}, {3}, {4}, {1}]
    assert summary["fold_source"] == "dataset" and summary["folds"] == 4 and len(summary["per_fold"]) == 4


def test_cv_with_another_k_than_the_datasets_folds_names_the_right_k(make_store, fitted):
    expected = r"--cv 3: these tracks come with 4 predefined folds \(UrbanSound8K\); .*: pass --cv 4"
    with pytest.raises(ParameterError, match=expected):
        select.cross_validate(make_store(_us8k()), "cnn1", TrainConfig(), folds=3)
    assert not fitted  # refused before any model is fitted


def test_cv_without_dataset_folds_is_stratified_and_says_so(make_store, fitted):
    records = [{"track_id": f"sha256:{i:02d}", "dataset": "folder", "label": "ab"[i % 2]} for i in range(12)]
    summary = select.cross_validate(make_store(records), "cnn1", TrainConfig(seed=5), folds=3)
    assert summary["fold_source"] == "stratified(seed=5)"
    assert [int((t["split"] == "test").sum()) for t in fitted] == [4, 4, 4]


def test_fold_assignment_is_the_datasets_fold_order():
    table = pd.DataFrame(_us8k(folds=(7, 3, 10), per_fold=2))
    fold_of, source = select.fold_assignment(table, 3, seed=0)
    assert source == "dataset"
    np.testing.assert_array_equal(fold_of, [1, 1, 0, 0, 2, 2])  # folds 3, 7, 10 → 0, 1, 2


def test_fold_assignment_spreads_tracks_without_dataset_folds_over_them():
    folder = pd.DataFrame([{"track_id": f"x{i}", "dataset": "folder", "label": "ab"[i % 2], "fold": None}
                           for i in range(6)])  # fmt: skip
    table = pd.concat([pd.DataFrame(_us8k(folds=(1, 2, 3), per_fold=2)), folder], ignore_index=True)
    table["fold"] = table["fold"].astype("Int64")
    fold_of, source = select.fold_assignment(table, 3, seed=1)
    assert source == "dataset+stratified(seed=1)"
    np.testing.assert_array_equal(fold_of[:6], [0, 0, 1, 1, 2, 2])
    for k in range(3):  # one track of each label in each fold
        assert sorted(folder["label"][fold_of[6:] == k]) == ["a", "b"]


def test_fold_assignment_refuses_too_few_dataset_folds():
    with pytest.raises(ParameterError, match=r"2 predefined folds.*3 or more"):
        select.fold_assignment(pd.DataFrame(_us8k(folds=(1, 2))), 2, seed=0)
