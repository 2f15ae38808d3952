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


def test_linear_probe_keeps_the_c_with_the_best_validation_log_loss():
    from genreflow.pipeline.training.fit import select_logistic_regression

    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, (3, 20))

    def draw(n, noise):
        y = np.arange(n) % 3
        return centres[y] + rng.normal(0, noise, (n, 20)), y

    grid = (0.001, 0.01, 0.1, 1.0, 10.0)
    separable = select_logistic_regression(*draw(60, 0.5), *draw(30, 0.5), grid)
    assert separable.accuracy == 1.0 and separable.c >= 1.0  # every C is 100 % right; the sharpest wins
    assert separable.classifier.predict_proba(draw(30, 0.5)[0]).max(axis=1).min() > 0.9
    noisy = select_logistic_regression(*draw(60, 6.0), *draw(300, 6.0), grid)
    assert noisy.c < separable.c  # overlapping classes: confident fits pay in log loss
