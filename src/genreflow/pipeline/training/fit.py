"""Fitting one architecture on the store: gradient training (with seed 000's two phases) or linear
probes (:mod:`.probe`: the one of lowest cross-validated log loss among the candidates).

Gradient training runs epochs that cover every training patch, stops early on validation loss, and
starts a pretrained backbone's softmax head from its linear probe's solution, so fine-tuning can only
refine it. A run keeps its state under ``workdir``: after each epoch, the phase's weights, optimizer,
history and early-stopping state (:class:`~.resume.Backup`), plus a marker once a phase finished, so a run killed
mid-epoch resumes from its last finished epoch when started again; the card's ``fit.epochs_run`` says,
per phase, the epoch it resumed from and the epochs the run itself trained.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ParameterError
from ..models.architectures import ARCHITECTURES, Architecture, initial_weights, unfreeze_top
from ..patches import PatchReader, evaluation_patches, model_inputs
from .augment import Augment, patches_per_track, training_batches
from .config import HEADS, TrainConfig
from .data import LabelledTracks
from .probe import ProbeFeatures, fit_linear_probes
from .resume import Backup, PhaseState, checkpoint, replace_file, write_json


@dataclass
class FitResult:
    model: Any
    history: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)


def fit_backbone(
    candidates: Sequence[Architecture],
    reader: PatchReader,
    data: LabelledTracks,
    config: TrainConfig,
    workdir: Path,
    *,
    features: ProbeFeatures | None = None,
) -> tuple[Architecture, FitResult]:
    """What ``--backbone`` fits (:func:`~..models.architectures.backbone_candidates`): of linear probes
    the one of lowest inner cross-validated log loss, fitted on train + valid (``features`` caches
    their tagger features for the run), else the one gradient-trained architecture."""
    if all(arch.linear_probe for arch in candidates):
        probe = fit_linear_probes(
            candidates, reader, data, config, features or ProbeFeatures(batch_size=config.batch_size)
        )
        return probe.arch, FitResult(probe.model, {}, probe.seconds, probe.details)
    (arch,) = candidates
    return arch, fit(arch, reader, data, config, workdir)


def fit(arch: Architecture, reader: PatchReader, data: LabelledTracks, config: TrainConfig, workdir: Path) -> FitResult:
    """Train ``arch`` on the train split, selecting on valid; the test split is not touched here."""
    if arch.linear_probe and config.head != HEADS[0]:
        raise ParameterError(f"{arch.name} is a linear probe: its head is {HEADS[0]!r}, not {config.head!r}")
    if arch.linear_probe:
        return fit_backbone((arch,), reader, data, config, workdir)[1]
    import keras

    keras.utils.set_random_seed(config.seed)
    started = time.perf_counter()
    labels = {name: i for i, name in enumerate(data.classes)}
    weights_file = Path(config.weights) if config.weights else None
    weights = initial_weights(arch, weights_file)
    model = arch.build(arch, len(data.classes), weights=weights_file, head=config.head)
    history, details = _fit_gradient(model, arch, reader, data, labels, config, workdir, weights)
    return FitResult(model, history, time.perf_counter() - started, details)


@dataclass(frozen=True)
class _Phase:
    """One ``model.fit`` of a gradient run: seed 000's head phase, or its fine-tuning with the top opened."""

    name: str
    epochs: int
    learning_rate: float
    freeze_backbone: bool = False  # a pretrained backbone's head phase (the model is otherwise trained as built)
    open_top: int | None = None  # fine-tuning: the backbone's top layers to open (0: all of them)


def _fit_gradient(
    model: Any,
    arch: Architecture,
    reader: PatchReader,
    data: LabelledTracks,
    labels: dict[str, int],
    config: TrainConfig,
    workdir: Path,
    weights: dict[str, Any],
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Seed 000's phases with early stopping on valid, then (``config.refit``) the same phases again
    from the same start on train + valid, each for the epochs early stopping kept.

    A pretrained musicnn-family backbone with a ``softmax`` head starts from the linear probe's
    solution on the same frozen features of the training tracks (:func:`_head_from_probe`), and
    every phase counts its starting weights as epoch 0 (:func:`~.resume.checkpoint`): fine-tuning replaces
    the probe only where validation loss improves. The refit starts the same way, its probe fitted
    on train + valid as the linear model's is: where no epoch was kept, it is that linear model.
    """
    train, valid = data.split("train"), data.split("valid")
    probe = ARCHITECTURES.get(f"{arch.pretrained}-linear") if arch.pretrained and config.head == HEADS[0] else None
    head_init: dict[str, Any] = {"from": "random init"}
    if probe is not None:
        head_init = _head_from_probe(model, probe, reader, dataclasses.replace(data, table=train), config)
    start = model.get_weights()
    phases = [_Phase("head", config.epochs, config.learning_rate, freeze_backbone=weights["pretrained"])]
    if weights["pretrained"] and config.fine_tune_epochs:
        phases.append(_Phase("fine-tune", config.fine_tune_epochs, config.learning_rate * config.fine_tune_lr_factor,
                             open_top=config.fine_tune_layers))  # fmt: skip
    history: dict[str, list[float]] = {}
    runs: dict[str, dict[str, Any]] = {}
    kept = _run_phases(model, reader, train, valid, labels, config, workdir, phases, history,
                       keep_start=probe is not None, runs=runs)  # fmt: skip
    details: dict[str, Any] = {
        "phases": [p.name for p in phases], "weights": weights, "head": config.head, "head_init": head_init,
        "augment": config.augment.spec(), "early_stopping": kept, "epochs_run": runs, "history": history,
        "patches_per_epoch": int(patches_per_track(train, reader.patch_seconds).sum()),
        "steps_per_epoch": _steps(train, reader, config),
    }  # fmt: skip
    if config.refit:
        model.set_weights(start)
        both = pd.concat([train, valid], ignore_index=True)
        if probe is not None:  # the same start, from train + valid: the probe as the linear model fits it
            details["refit_head_init"] = _head_from_probe(model, probe, reader, data, config)
        again = [dataclasses.replace(p, name=f"refit-{p.name}", epochs=kept[p.name]["epochs"]) for p in phases
                 if kept[p.name]["epochs"]]  # fmt: skip
        _run_phases(model, reader, both, None, labels, config, workdir, again, history, keep_start=False, runs=runs)
        details["refit"] = {"tracks": len(both), "epochs": {p.name: p.epochs for p in again}}
    return history, details


def _head_from_probe(
    model: Any, probe: Architecture, reader: PatchReader, data: LabelledTracks, config: TrainConfig
) -> dict[str, Any]:
    """Fit ``probe`` (the same backbone's linear probe) on ``data``'s non-test tracks and copy its
    softmax layer into ``model``'s head; returns what the card records of it."""
    fitted = fit_linear_probes((probe,), reader, data, config, ProbeFeatures(batch_size=config.batch_size))
    model.get_layer("head_softmax").set_weights(fitted.model.get_layer("head_softmax").get_weights())
    return {"from": f"linear probe {probe.name}", "tracks": fitted.details["refitted_on"]["n_tracks"],
            **{key: fitted.details[key] for key in ("C", "C_chosen_by", "inner_cv")}}  # fmt: skip


def _steps(tracks: pd.DataFrame, reader: PatchReader, config: TrainConfig) -> int:
    """Steps per epoch: ``config.steps_per_epoch``, else enough batches to cover every training patch."""
    patches = int(patches_per_track(tracks, reader.patch_seconds).sum())
    return config.steps_per_epoch or max(1, -(-patches // config.batch_size))


def _run_phases(
    model: Any,
    reader: PatchReader,
    train: pd.DataFrame,
    valid: pd.DataFrame | None,
    labels: dict[str, int],
    config: TrainConfig,
    workdir: Path,
    phases: list[_Phase],
    history: dict[str, list[float]],
    *,
    keep_start: bool,
    runs: dict[str, dict[str, Any]] | None = None,
) -> dict[str, dict[str, float]]:
    """Run ``phases`` in order (each resumable under ``workdir``), adding to ``history``; returns, per
    phase, the epochs it kept (0: its starting weights stayed best) and its validation loss at the
    start and at the end. The first phase's start competes only when ``keep_start`` (a solution, not
    a random head); a later phase always starts from the one before. Without ``valid`` every epoch runs.

    Each phase saves its state after every epoch (:class:`~.resume.Backup`): a run killed mid-epoch resumes
    from its last finished epoch, with its weights, optimizer, history and early stopping's best so
    far, and a finished phase is not trained again. ``runs`` gets, per phase, the epochs it has in
    all, the epoch it resumed from (0: a fresh start) and the epochs this call trained.
    """
    import keras

    runs = {} if runs is None else runs
    augment = Augment(config.augment, np.random.default_rng(config.seed))
    stream = training_batches(reader, train, train["label"].map(labels).to_numpy(), augment,
                              batch_size=config.batch_size)  # fmt: skip
    validation = None
    if valid is not None:
        valid_x, owners = evaluation_patches(reader, valid)
        validation = (model_inputs(valid_x), valid["label"].map(labels).to_numpy()[owners])
    kept: dict[str, dict[str, float]] = {}
    for index, phase in enumerate(phases):
        if phase.freeze_backbone:
            model.get_layer("backbone").trainable = False
        if phase.open_top is not None:
            unfreeze_top(model, phase.open_top)
        done = workdir / f"{phase.name}.done.weights.h5"
        if done.exists():  # finished before an interruption: keep its weights, skip its epochs
            model.load_weights(done)
            history.update(json.loads((workdir / f"{phase.name}.history.json").read_text()))
            kept[phase.name] = json.loads((workdir / f"{phase.name}.kept.json").read_text())
            finished = json.loads((workdir / f"{phase.name}.epochs.json").read_text())
            runs[phase.name] = {**finished, "resumed_from_epoch": finished["epochs"], "this_run": []}
            continue
        model.compile(
            optimizer=keras.optimizers.Adam(phase.learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        backup = Backup(workdir / f"{phase.name}-backup")
        restored = backup.restore(model)
        if restored is None:
            state, best = PhaseState(), None
            if validation is not None:
                state.start_loss = float(model.evaluate(*validation, batch_size=config.batch_size, verbose=0)[0])
                state.best_loss = state.start_loss if keep_start or index > 0 else np.inf
                best = model.get_weights()
        else:
            state, best = restored
        resumed_from = state.epoch
        recorder = checkpoint(backup, state, best, patience=config.patience)
        if not (state.stopped or state.epoch >= phase.epochs):
            model.fit(
                stream,
                steps_per_epoch=_steps(train, reader, config),
                initial_epoch=state.epoch,
                epochs=phase.epochs,
                validation_data=validation,
                validation_batch_size=config.batch_size,
                shuffle=False,  # the stream is already a fresh random draw of tracks and patches
                callbacks=[recorder],
                verbose=0,
            )
        if validation is None:
            kept[phase.name] = {"epochs": state.epoch}
        else:
            model.set_weights(recorder.best)
            kept[phase.name] = {"epochs": state.best_epoch, "start_val_loss": state.start_loss,
                                "val_loss": state.best_loss}  # fmt: skip
        finished = {"epochs": state.epoch, "stopped_early": state.stopped}
        runs[phase.name] = {**finished, "resumed_from_epoch": resumed_from,
                            "this_run": list(range(resumed_from + 1, state.epoch + 1))}  # fmt: skip
        phase_history = {f"{phase.name}/{k}": values for k, values in state.history.items()}
        write_json(workdir / f"{phase.name}.history.json", phase_history)
        write_json(workdir / f"{phase.name}.kept.json", kept[phase.name])
        write_json(workdir / f"{phase.name}.epochs.json", finished)
        partial = workdir / f"{phase.name}.done-partial.weights.h5"
        model.save_weights(partial)
        replace_file(partial, done)  # the marker last, whole: the files it stands for are already there
        backup.clear()
        history.update(phase_history)
    return kept
