"""Resuming a gradient-trained phase where a killed run left it: after each epoch its weights,
optimizer, history and early-stopping state are saved so that a kill at any instant leaves the last
finished epoch whole (:class:`Backup`), and the callback that records each epoch and stops early
(:func:`checkpoint`)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class PhaseState:
    """A phase after its last finished epoch: what :class:`Backup` keeps of it besides weights.

    ``epoch`` counts the epochs trained (across interrupted runs); ``history`` is Keras' logs of each;
    the rest is early stopping's state: the validation loss at the start, the best loss and the epoch
    that had it (0: the start), the epochs since it improved, and whether patience ran out.
    """

    epoch: int = 0
    history: dict[str, list[float]] = field(default_factory=dict)
    start_loss: float | None = None
    best_loss: float = np.inf
    best_epoch: int = 0
    waited: int = 0
    stopped: bool = False


class Backup:
    """A phase's resumable state in ``folder``, saved after each epoch.

    ``state.json`` holds the :class:`PhaseState` and names two files beside it: that epoch's model and
    optimizer weights (``epoch-<n>.weights.h5``) and early stopping's best weights so far
    (``best-<epoch>.npz``; none without validation). The weights go first, under names of their own,
    then ``state.json`` is replaced by a rename, so a process killed at any instant leaves the last
    finished epoch's state whole. (Keras' ``BackupAndRestore`` rewrites one weights file in place: a
    kill during that write leaves a file that does not load, and the next run fails on it.)
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self._best_file: str | None = None  # the best weights state.json names now

    def restore(self, model: Any) -> tuple[PhaseState, list[np.ndarray] | None] | None:
        """Load the saved epoch's weights and optimizer into ``model`` (compiled); return the state and
        the best weights so far, or None when nothing was saved."""
        path = self.folder / "state.json"
        if not path.exists():
            return None
        record = json.loads(path.read_text())
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        model.load_weights(self.folder / record["weights"])
        best, self._best_file = None, record["best"]
        if self._best_file is not None:
            with np.load(self.folder / self._best_file) as arrays:
                best = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
        return PhaseState(**record["state"]), best

    def save(self, model: Any, state: PhaseState, best: list[np.ndarray] | None) -> None:
        """Save the epoch ``state`` has just finished (``best``: early stopping's best weights)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        weights = f"epoch-{state.epoch}.weights.h5"  # a leftover of a killed run's unpublished epoch is rewritten
        model.save_weights(self.folder / weights)
        _sync(self.folder / weights)
        best_file = None if best is None else f"best-{state.best_epoch}.npz"
        if best_file is not None and best_file != self._best_file:
            partial = self.folder / f"{best_file}.partial"
            with open(partial, "wb") as handle:
                np.savez(handle, *best)
            replace_file(partial, self.folder / best_file)
        record = {"state": dataclasses.asdict(state), "weights": weights, "best": best_file}
        write_json(self.folder / "state.json", record)
        self._best_file = best_file
        for stale in self.folder.iterdir():
            if stale.name not in ("state.json", weights, best_file):
                stale.unlink(missing_ok=True)

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def checkpoint(backup: Backup, state: PhaseState, best: list[np.ndarray] | None, *, patience: int) -> Any:
    """A callback that records each epoch in ``state`` and saves it with ``backup``; with validation
    (``best`` given: the start's weights, or the best a resumed run had seen) it is early stopping on
    validation loss that counts the phase's start as epoch 0 (at ``state.start_loss``; infinite: any
    epoch beats it), keeping the best weights in ``.best`` for the caller to set.

    (Keras' ``EarlyStopping`` only compares epochs it ran, so a phase could end worse than it began,
    and a resumed run would forget the epochs before the interruption.)
    """
    import keras

    class Checkpoint(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.best = best

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            logs = logs or {}
            for key, value in logs.items():
                state.history.setdefault(key, []).append(float(value))
            state.epoch = epoch + 1
            if self.best is not None:
                loss = float(logs["val_loss"])
                if loss < state.best_loss:
                    state.best_loss, state.best_epoch, state.waited = loss, epoch + 1, 0
                    self.best = self.model.get_weights()
                else:
                    state.waited += 1
                    state.stopped = state.waited >= patience
                    self.model.stop_training = state.stopped
            backup.save(self.model, state, self.best)

    return Checkpoint()


def write_json(path: Path, value: Any) -> None:
    """``path`` holds ``value`` whole or keeps what it held: written aside, synced, renamed."""
    partial = path.with_name(f"{path.name}.partial")
    partial.write_text(json.dumps(value))
    replace_file(partial, path)


def replace_file(partial: Path, path: Path) -> None:
    _sync(partial)
    os.replace(partial, path)


def _sync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
