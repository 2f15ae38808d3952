"""Fitting one architecture on the store: gradient training (with seed 000's two phases) or a linear probe.

A run keeps its state under ``workdir``: Keras' ``BackupAndRestore`` per phase, plus a marker
once a phase finished, so a run killed mid-epoch resumes from its last epoch when started again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..models.architectures import Architecture, unfreeze_top
from ..patches import PatchReader, evaluation_patches, model_inputs
from .augment import Augment, training_batches
from .config import TrainConfig
from .data import LabelledTracks
from .evaluate import track_outputs


@dataclass(frozen=True)
class LinearChoice:
    """The kept logistic regression and its validation figures."""

    c: float
    classifier: Any
    accuracy: float
    log_loss: float


def select_logistic_regression(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_valid: np.ndarray,
    y_valid: np.ndarray,
    grid: tuple[float, ...],
) -> LinearChoice:
    """Fit one logistic regression per C and keep the lowest validation log loss (ties: smaller C).

    Log loss, not accuracy: the probabilities are the product. On separable data every C scores
    100 % and an accuracy rule would keep the most regularised fit, whose top probability on
    perfectly classified tracks was under 0.5.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    choices = []
    for c in grid:
        classifier = LogisticRegression(C=c, max_iter=2000).fit(x_train, y_train)
        probabilities = classifier.predict_proba(x_valid)
        loss = log_loss(y_valid, probabilities, labels=classifier.classes_)
        accuracy = float(np.mean(classifier.classes_[probabilities.argmax(axis=1)] == y_valid))
        choices.append(LinearChoice(c, classifier, accuracy, float(loss)))
    return min(choices, key=lambda choice: (choice.log_loss, choice.c))


@dataclass
class FitResult:
    model: Any
    history: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)


def fit(arch: Architecture, reader: PatchReader, data: LabelledTracks, config: TrainConfig, workdir: Path) -> FitResult:
    """Train ``arch`` on the train split, selecting on valid; the test split is not touched here."""
    import keras

    keras.utils.set_random_seed(config.seed)
    started = time.perf_counter()
    labels = {name: i for i, name in enumerate(data.classes)}
    build_kwargs = {"weights": Path(config.weights) if config.weights else None}
    model = arch.build(arch, len(data.classes), **build_kwargs)
    if arch.linear_probe:
        details = _fit_linear_probe(model, reader, data, labels, config)
        return FitResult(model, {}, time.perf_counter() - started, details)
    train, valid = data.split("train"), data.split("valid")
    augment = Augment(rng=np.random.default_rng(config.seed))
    train_y = train["label"].map(labels).to_numpy()
    stream = training_batches(reader, train, train_y, augment, batch_size=config.batch_size)
    valid_x, owners = evaluation_patches(reader, valid)
    valid_y = valid["label"].map(labels).to_numpy()[owners]
    steps = config.steps_per_epoch or max(1, int(np.ceil(len(train) / config.batch_size)))
    phases = [("head", config.epochs, config.learning_rate)]
    if arch.pretrained and config.fine_tune_epochs:
        phases.append(("fine-tune", config.fine_tune_epochs, config.learning_rate * config.fine_tune_lr_factor))
    history: dict[str, list[float]] = {}
    for phase, epochs, learning_rate in phases:
        if phase == "fine-tune":
            unfreeze_top(model, config.fine_tune_layers)
        done = workdir / f"{phase}.done.weights.h5"
        if done.exists():  # finished before an interruption: keep its weights, skip its epochs
            model.load_weights(done)
            history.update(json.loads((workdir / f"{phase}.history.json").read_text()))
            continue
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        callbacks = [
            keras.callbacks.BackupAndRestore(str(workdir / f"{phase}-backup")),
            keras.callbacks.EarlyStopping(patience=config.patience, restore_best_weights=True),
        ]
        fitted = model.fit(
            stream,
            steps_per_epoch=steps,
            epochs=epochs,
            validation_data=(model_inputs(valid_x), valid_y),
            batch_size=config.batch_size,
            shuffle=False,  # the stream is already a fresh random draw of tracks and patches
            callbacks=callbacks,
            verbose=0,
        )
        phase_history = {f"{phase}/{k}": [float(v) for v in values] for k, values in fitted.history.items()}
        model.save_weights(done)
        (workdir / f"{phase}.history.json").write_text(json.dumps(phase_history))
        history.update(phase_history)
    return FitResult(model, history, time.perf_counter() - started, {"phases": [p[0] for p in phases]})


def _fit_linear_probe(
    model: Any, reader: PatchReader, data: LabelledTracks, labels: dict[str, int], config: TrainConfig
) -> dict[str, Any]:
    """Logistic regression on track-averaged frozen features, C chosen on valid, written into the head."""
    from sklearn.preprocessing import StandardScaler

    train, valid = data.split("train"), data.split("valid")
    x_train, x_valid = (
        track_outputs(model, reader, t, ["embedding"], batch_size=config.batch_size)["embedding"]
        for t in (train, valid)
    )
    y_train, y_valid = train["label"].map(labels).to_numpy(), valid["label"].map(labels).to_numpy()
    scaler = StandardScaler().fit(x_train)
    choice = select_logistic_regression(
        scaler.transform(x_train), y_train, scaler.transform(x_valid), y_valid, config.linear_c
    )
    coef, intercept = choice.classifier.coef_, choice.classifier.intercept_
    if coef.shape[0] == 1:  # binary: softmax([0, z]) is sklearn's sigmoid(z)
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
    # softmax(W·(e - μ)/σ + b) as one Dense layer: fold the scaler into the weights.
    weights = (coef / scaler.scale_).T
    bias = intercept - (coef * scaler.mean_ / scaler.scale_).sum(axis=1)
    model.get_layer("head_softmax").set_weights([weights.astype(np.float32), bias.astype(np.float32)])
    return {"classifier": "logistic regression", "C": choice.c, "valid_track_accuracy": choice.accuracy,
            "valid_log_loss": choice.log_loss, "C_chosen_by": "validation log loss",
            "C_grid": list(config.linear_c)}  # fmt: skip
