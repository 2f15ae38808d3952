import numpy as np
import pytest

from genreflow.pipeline.errors import ParameterError
from genreflow.pipeline.training.config import TrainConfig
from genreflow.pipeline.training.select import _stratified_folds, parse_grid


def test_grid_is_the_product_of_its_axes():
    grid = parse_grid(["lr=1e-3,1e-4", "batch=32,64"], TrainConfig(epochs=7))
    assert [(c.learning_rate, c.batch_size) for c in grid] == [(1e-3, 32), (1e-3, 64), (1e-4, 32), (1e-4, 64)]
    assert all(c.epochs == 7 for c in grid)
    with pytest.raises(ParameterError, match="KEY one of"):
        parse_grid(["momentum=0.9"], TrainConfig())
    with pytest.raises(ParameterError, match="not all numbers"):
        parse_grid(["batch=32,big"], TrainConfig())


def test_folds_are_stratified_and_seeded():
    labels = np.array(["a"] * 9 + ["b"] * 6)
    folds = _stratified_folds(labels, 3, seed=1)
    for k in range(3):
        assert (labels[folds == k] == "a").sum() == 3 and (labels[folds == k] == "b").sum() == 2
    np.testing.assert_array_equal(folds, _stratified_folds(labels, 3, seed=1))
    with pytest.raises(ParameterError, match="fewer than --cv 7"):
        _stratified_folds(labels, 7, seed=0)
