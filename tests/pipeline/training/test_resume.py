"""Resumable training state (``pipeline/training/resume.py``) without processes: what a killed run
saved is what the next one restores, early stopping's memory included."""

from __future__ import annotations

import numpy as np

from genreflow.pipeline.training.resume import Backup, PhaseState, checkpoint


def test_early_stopping_resumes_with_the_best_the_killed_run_had_seen(tmp_path):
    """The saved state carries early stopping across a kill: the best epoch, its loss and weights, and
    the epochs waited. Scripted losses: epoch 1 is best (0.5), epoch 2 worse, then the process dies; the
    resumed run's epochs 3 and 4 (0.7, 0.8) beat nothing the killed run had seen, so the phase stops
    after patience 3 with epoch 1's weights, where a fresh early stopping would keep epoch 3's."""
    import keras

    def compiled(seed: int):
        keras.utils.set_random_seed(seed)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
        model.optimizer.build(model.trainable_variables)
        return model

    def epoch(callback, model, index: int, loss: float) -> list[np.ndarray]:
        model.set_weights([np.full_like(w, 10 * index + i) for i, w in enumerate(model.get_weights())])
        callback.on_epoch_end(index, {"loss": loss, "val_loss": loss})
        return model.get_weights()

    folder = tmp_path / "head-backup"
    model = compiled(0)
    state = PhaseState(start_loss=1.0, best_loss=1.0)
    callback = checkpoint(Backup(folder), state, model.get_weights(), patience=3)
    callback.set_model(model)
    best = epoch(callback, model, 0, 0.5)
    epoch(callback, model, 1, 0.9)
    assert sorted(p.name for p in folder.iterdir()) == ["best-1.npz", "epoch-2.weights.h5", "state.json"]
    del model, callback, state  # the process dies here; a new one starts from the folder alone

    model = compiled(1)
    restored, weights = Backup(folder).restore(model)
    assert (restored.epoch, restored.best_epoch, restored.best_loss, restored.waited) == (2, 1, 0.5, 1)
    assert restored.history == {"loss": [0.5, 0.9], "val_loss": [0.5, 0.9]}
    np.testing.assert_array_equal(model.get_weights()[0], np.full((3, 2), 10.0))  # epoch 2's, as saved
    callback = checkpoint(Backup(folder), restored, weights, patience=3)
    callback.set_model(model)
    epoch(callback, model, 2, 0.7)
    assert not model.stop_training
    epoch(callback, model, 3, 0.8)
    assert model.stop_training and restored.stopped and restored.best_epoch == 1 and restored.waited == 3
    for got, want in zip(callback.best, best, strict=True):
        np.testing.assert_array_equal(got, want)
    assert Backup(folder).restore(compiled(2))[0] == restored  # the stop is saved too: a resume trains no more
