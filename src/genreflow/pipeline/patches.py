"""3-s patches of a model's input feature sets, read straight from the Zarr store.

Training, evaluation and scoring all read patches the same way: a :class:`PatchReader` reads the
rows of one track at a time, so a catalogue of any size fits in the memory of a few batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import pandas as pd

from .store import StoreLayout, open_features, store_attrs


class PatchSpec(Protocol):
    """What a patch reader needs of a model: its input feature sets and frames per patch."""

    inputs: tuple[str, ...]
    patch_frames: tuple[int, ...]


class PatchReader:
    """Reads patches of one model's inputs, one track (a few rows) at a time."""

    def __init__(self, layout: StoreLayout, arch: PatchSpec, *, hop: float = 1.0) -> None:
        group = open_features(layout)
        self.arch = arch
        self.hop = hop  # evaluation and scoring: patch starts this fraction of a patch apart
        self.arrays = [group[name]["data"] for name in arch.inputs]
        self.frame_rates = [group[name].attrs["config"]["sample_rate"] / group[name].attrs["config"]["hop_length"]
                            for name in arch.inputs]  # fmt: skip
        self.scales = [group[name].attrs["config"].get("scale", "db") for name in arch.inputs]
        self.views = tuple(store_attrs(layout).get("channel_views", ("mid",)))
        self.mid = self.views.index("mid") if "mid" in self.views else 0

    @property
    def patch_seconds(self) -> float:
        """Length of one patch in seconds (every input covers the same seconds)."""
        return self.arch.patch_frames[0] / self.frame_rates[0]

    def track(self, row: int, *, view: int | None = None) -> list[np.ndarray]:
        """The whole stored window of one track view, float32, per input."""
        offset = self.mid if view is None else view
        return [np.asarray(array[row + offset], dtype=np.float32) for array in self.arrays]

    def all_patches(self, row: int, valid_s: float) -> list[np.ndarray]:
        """Every patch inside the valid audio, starting ``hop`` patches apart (at least one), per input."""
        seconds = self.patch_seconds
        starts_s = np.arange(int(patch_count(valid_s, seconds, self.hop))) * (self.hop * seconds)
        return [
            np.stack([crop_frames(features, round(start * rate), size) for start in starts_s])
            for features, size, rate in zip(self.track(row), self.arch.patch_frames, self.frame_rates, strict=True)
        ]


def patch_count(valid_s: Any, patch_s: float, hop: float) -> Any:
    """Patches of ``patch_s`` starting ``hop * patch_s`` apart that fit in ``valid_s`` (at least one),
    for one track or an array of them; ``hop`` 1: the non-overlapping ones."""
    return 1 + np.maximum(0, (np.asarray(valid_s) - patch_s) // (hop * patch_s)).astype(int)


def crop_frames(features: np.ndarray, start: int, frames: int) -> np.ndarray:
    """``frames`` columns of ``features`` from ``start`` (moved inside; edge-padded when too short)."""
    start = min(max(0, start), max(0, features.shape[1] - frames))
    patch = features[:, start : start + frames]
    if patch.shape[1] < frames:
        patch = np.pad(patch, ((0, 0), (0, frames - patch.shape[1])), mode="edge")
    return patch


def evaluation_patches(reader: PatchReader, tracks: pd.DataFrame) -> tuple[list[np.ndarray], np.ndarray]:
    """All patches of ``tracks`` per input, and the index of the track each patch came from."""
    per_input: list[list[np.ndarray]] = [[] for _ in reader.arch.inputs]
    owners = []
    for position, (row, valid_s) in enumerate(zip(tracks["row"], tracks["valid_s"], strict=True)):
        patches = reader.all_patches(int(row), float(valid_s))
        for collected, p in zip(per_input, patches, strict=True):
            collected.append(p)
        owners.append(np.full(patches[0].shape[0], position))
    return [np.concatenate(c) for c in per_input], np.concatenate(owners)


def model_inputs(per_input: Sequence[Any]) -> Any:
    """What Keras expects: the array itself for a one-input model, a tuple for several."""
    return per_input[0] if len(per_input) == 1 else tuple(per_input)
