"""Labelled tracks, their splits, and 3-s patches read straight from the Zarr store.

Nothing loads a whole feature array: a :class:`PatchReader` reads the rows of one track at a time,
so a catalogue of any size trains in the memory of a few batches.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from ..errors import ParameterError
from ..store import StoreLayout, current_tracks, open_features, read_manifest, store_attrs

SPLITS = ("train", "valid", "test")
_SPLIT_ALIASES = {"training": "train", "train": "train", "validation": "valid", "valid": "valid", "test": "test"}


@dataclass(frozen=True)
class LabelledTracks:
    """The tracks a model learns from: one row each with ``track_id, uri, label, split, row, valid_s``."""

    table: pd.DataFrame
    classes: tuple[str, ...]
    split_source: str  # "dataset" or "stratified(seed=K)" or "folds"

    def split(self, name: str) -> pd.DataFrame:
        return self.table[self.table["split"] == name].reset_index(drop=True)

    def counts(self) -> dict[str, int]:
        return {name: int((self.table["split"] == name).sum()) for name in SPLITS}


def labelled_tracks(
    layout: StoreLayout,
    feature_sets: Sequence[str],
    *,
    seed: int = 0,
    fractions: tuple[float, float] = (0.15, 0.15),
) -> LabelledTracks:
    """Every ``ok`` labelled track that has ``feature_sets``, with a train/valid/test split.

    The dataset's own split is used where it has one for every track (FMA ``split``, GTZAN's
    fault-filtered lists); UrbanSound8K folds give test = last fold, valid = the one before;
    otherwise a stratified random split, seeded, of ``fractions`` (valid, test).

    Raises
    ------
    ParameterError
        Fewer than two labels, or a label with too few tracks to appear in every split.
    """
    manifest = read_manifest(layout)
    if manifest.empty:
        raise ParameterError(f"{layout.root}: the store has no tracks yet (run `genreflow ingest`)")
    tracks = current_tracks(manifest)
    has_sets = tracks["feature_sets"].map(lambda names: set(feature_sets) <= set(names))
    tracks = tracks[(tracks["status"] == "ok") & tracks["label"].notna() & has_sets].reset_index(drop=True)
    classes = tuple(sorted(tracks["label"].unique()))
    if len(classes) < 2:
        raise ParameterError(f"{layout.root}: training needs at least two labels, found {list(classes)}")
    split, source = _dataset_split(tracks)
    if split is None:
        split, source = _stratified_split(tracks["label"], seed=seed, fractions=fractions), f"stratified(seed={seed})"
    table = tracks.assign(split=split)[["track_id", "uri", "label", "split", "row", "valid_s"]]
    table = table.astype({"row": "int64", "valid_s": "float64"})
    return LabelledTracks(table, classes, source)


def _dataset_split(tracks: pd.DataFrame) -> tuple[pd.Series | None, str]:
    normalised = tracks["split"].map(lambda s: _SPLIT_ALIASES.get(str(s).lower()) if pd.notna(s) else None)
    if normalised.notna().all() and set(normalised) >= {"train", "test"}:
        if "valid" not in set(normalised):  # carve validation out of train, deterministically
            normalised = normalised.copy()
            train = normalised.index[normalised == "train"]
            normalised.loc[train[::7]] = "valid"
        return normalised, "dataset"
    if tracks["fold"].notna().all() and tracks["fold"].nunique() >= 3:
        folds = sorted(tracks["fold"].unique())
        split = tracks["fold"].map(lambda f: "test" if f == folds[-1] else "valid" if f == folds[-2] else "train")
        return split, "folds"
    return None, ""


def _stratified_split(labels: pd.Series, *, seed: int, fractions: tuple[float, float]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    split = np.full(len(labels), "train", dtype=object)
    for label, index in labels.groupby(labels).groups.items():
        index = rng.permutation(np.asarray(index))
        n_valid = max(1, round(fractions[0] * len(index)))
        n_test = max(1, round(fractions[1] * len(index)))
        if len(index) < n_valid + n_test + 1:
            raise ParameterError(f"label {label!r} has {len(index)} tracks: too few for train, valid and test")
        split[index[:n_test]] = "test"
        split[index[n_test : n_test + n_valid]] = "valid"
    return split


@dataclass
class Augment:
    """Patch augmentations (training only); each is applied with its own probability.

    Time/frequency masking (SpecAugment), a random gain, additive noise, the zoom of seed 001
    (a random time stretch, then crop), and seed 002's channel split (a random left/right/mid row
    where the store holds those views).
    """

    mask_probability: float = 0.5
    gain_db: float = 6.0
    noise_std: float = 0.05
    zoom: float = 0.1
    channel_split: bool = True
    rng: np.random.Generator = field(default_factory=np.random.default_rng)


class PatchSpec(Protocol):
    """What a patch reader needs of a model: its input feature sets and frames per patch."""

    inputs: tuple[str, ...]
    patch_frames: tuple[int, ...]


class PatchReader:
    """Reads patches of one model's inputs, one track (a few rows) at a time."""

    def __init__(self, layout: StoreLayout, arch: PatchSpec) -> None:
        group = open_features(layout)
        self.arch = arch
        self.arrays = [group[name]["data"] for name in arch.inputs]
        self.frame_rates = [group[name].attrs["config"]["sample_rate"] / group[name].attrs["config"]["hop_length"]
                            for name in arch.inputs]  # fmt: skip
        self.scales = [group[name].attrs["config"].get("scale", "db") for name in arch.inputs]
        self.views = tuple(store_attrs(layout).get("channel_views", ("mid",)))
        self.mid = self.views.index("mid") if "mid" in self.views else 0

    def track(self, row: int, *, view: int | None = None) -> list[np.ndarray]:
        """The whole stored window of one track view, float32, per input."""
        offset = self.mid if view is None else view
        return [np.asarray(array[row + offset], dtype=np.float32) for array in self.arrays]

    def all_patches(self, row: int, valid_s: float) -> list[np.ndarray]:
        """Every non-overlapping patch inside the valid audio (at least one), per input."""
        seconds = _patch_seconds(self, 0)
        starts_s = np.arange(max(1, int(valid_s // seconds))) * seconds
        return [
            np.stack([crop_frames(features, round(start * rate), size) for start in starts_s])
            for features, size, rate in zip(self.track(row), self.arch.patch_frames, self.frame_rates, strict=True)
        ]

    def random_patch(self, row: int, valid_s: float, augment: Augment) -> list[np.ndarray]:
        """One random 3-s patch (the same seconds for every input), augmented."""
        rng = augment.rng
        view = int(rng.integers(len(self.views))) if augment.channel_split and len(self.views) > 1 else None
        features = self.track(row, view=view)
        seconds = _patch_seconds(self, 0) * (1 + rng.uniform(-augment.zoom, augment.zoom))
        start_s = rng.uniform(0, max(0.0, valid_s - seconds))
        out = []
        gain_db = rng.uniform(-augment.gain_db, augment.gain_db)
        for f, size, rate, scale in zip(features, self.arch.patch_frames, self.frame_rates, self.scales, strict=True):
            span = max(2, round(seconds * rate))
            patch = crop_frames(f, round(start_s * rate), span)
            if span != size:  # zoom: stretch the cropped span back to the patch length
                positions = np.linspace(0, span - 1, size)
                patch = np.stack([np.interp(positions, np.arange(span), band) for band in patch]).astype(np.float32)
            out.append(_augment(_with_gain(patch, gain_db, scale), augment))
        return out


def _patch_seconds(reader: PatchReader, index: int) -> float:
    return reader.arch.patch_frames[index] / reader.frame_rates[index]


def crop_frames(features: np.ndarray, start: int, frames: int) -> np.ndarray:
    """``frames`` columns of ``features`` from ``start`` (moved inside; edge-padded when too short)."""
    start = min(max(0, start), max(0, features.shape[1] - frames))
    patch = features[:, start : start + frames]
    if patch.shape[1] < frames:
        patch = np.pad(patch, ((0, 0), (0, frames - patch.shape[1])), mode="edge")
    return patch


def _with_gain(patch: np.ndarray, gain_db: float, scale: str) -> np.ndarray:
    """The patch of the same audio ``gain_db`` louder: a shift in dB, or through musicnn's log1p."""
    if scale == "db":
        return patch + gain_db
    power = (np.power(10.0, patch) - 1.0) / 10000.0  # log10(1 + 10000·S) back to S
    return np.log10(1.0 + 10000.0 * power * 10.0 ** (gain_db / 10.0)).astype(np.float32)


def _augment(patch: np.ndarray, augment: Augment) -> np.ndarray:
    """Additive noise (relative to the patch's spread) and one time and one frequency mask."""
    rng = augment.rng
    if augment.noise_std:
        patch = patch + rng.normal(0.0, augment.noise_std * (patch.std() + 1e-6), patch.shape)
    if rng.random() < augment.mask_probability:
        bins, frames = patch.shape
        fill = patch.mean()
        f0, f_width = rng.integers(bins), rng.integers(1, max(2, bins // 8))
        t0, t_width = rng.integers(frames), rng.integers(1, max(2, frames // 8))
        patch[f0 : f0 + f_width] = fill
        patch[:, t0 : t0 + t_width] = fill
    return patch.astype(np.float32)


def training_batches(
    reader: PatchReader, tracks: pd.DataFrame, labels: np.ndarray, augment: Augment, *, batch_size: int
) -> Any:
    """An endless ``tf.data`` stream of augmented random patches from ``tracks``, batched and prefetched."""
    import tensorflow as tf

    def patches() -> Iterator[tuple[Any, int]]:
        rows, valid = tracks["row"].to_numpy(), tracks["valid_s"].to_numpy()
        while True:
            for i in augment.rng.permutation(len(rows)):
                yield model_inputs(reader.random_patch(int(rows[i]), float(valid[i]), augment)), int(labels[i])

    signature = (model_inputs(_input_signature(reader)), tf.TensorSpec((), tf.int32))
    return (
        tf.data.Dataset.from_generator(patches, output_signature=signature).batch(batch_size).prefetch(tf.data.AUTOTUNE)
    )


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


def _input_signature(reader: PatchReader) -> tuple[Any, ...]:
    import tensorflow as tf

    return tuple(
        tf.TensorSpec((array.shape[1], frames), tf.float32)
        for array, frames in zip(reader.arrays, reader.arch.patch_frames, strict=True)
    )
