"""Training patches: random 3-s crops of the stored windows, augmented, as an endless ``tf.data`` stream.

An epoch covers the training patches: each track comes up as many times as it holds non-overlapping
patches (what evaluation reads of it), each time as a fresh random crop.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..patches import PatchReader, crop_frames, model_inputs, patch_count
from .config import AugmentConfig


@dataclass
class Augment:
    """Augmentation settings (:class:`AugmentConfig`) and the random stream that draws them."""

    settings: AugmentConfig = field(default_factory=AugmentConfig)
    rng: np.random.Generator = field(default_factory=np.random.default_rng)


def random_patch(reader: PatchReader, row: int, valid_s: float, augment: Augment) -> list[np.ndarray]:
    """One random 3-s patch of a track (the same seconds, view and gain for every input), augmented."""
    settings, rng = augment.settings, augment.rng
    features = reader.track(row, view=draw_view(len(reader.views), augment))
    seconds = reader.patch_seconds * (1 + rng.uniform(-settings.zoom, settings.zoom))
    start_s = rng.uniform(0, max(0.0, valid_s - seconds))
    gain_db = rng.uniform(-settings.gain_db, settings.gain_db)
    out = []
    for f, size, rate, scale in zip(features, reader.arch.patch_frames, reader.frame_rates, reader.scales, strict=True):
        patch = zoomed(crop_frames(f, round(start_s * rate), max(2, round(seconds * rate))), size)
        patch = with_noise(with_gain(patch, gain_db, scale), settings.noise, rng)
        out.append(masked(patch, settings.masking, rng))
    return out


def draw_view(n_views: int, augment: Augment) -> int | None:
    """Seed 002's channel split: a random stored view (mid, left or right); None (the mid) without one."""
    return int(augment.rng.integers(n_views)) if augment.settings.channels and n_views > 1 else None


def zoomed(patch: np.ndarray, frames: int) -> np.ndarray:
    """Seed 001's zoom: the cropped span stretched (or squeezed) in time to ``frames`` columns."""
    span = patch.shape[1]
    if span == frames:
        return patch
    positions = np.linspace(0, span - 1, frames)
    return np.stack([np.interp(positions, np.arange(span), band) for band in patch]).astype(np.float32)


def with_gain(patch: np.ndarray, gain_db: float, scale: str) -> np.ndarray:
    """The patch of the same audio ``gain_db`` louder: a shift in dB, or through musicnn's log1p."""
    if scale == "db":
        return patch + gain_db
    power = (np.power(10.0, patch) - 1.0) / 10000.0  # log10(1 + 10000·S) back to S
    return np.log10(1.0 + 10000.0 * power * 10.0 ** (gain_db / 10.0)).astype(np.float32)


def with_noise(patch: np.ndarray, relative_std: float, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise, its standard deviation ``relative_std`` times the patch's own."""
    if not relative_std:
        return patch
    return patch + rng.normal(0.0, relative_std * (patch.std() + 1e-6), patch.shape)


def masked(patch: np.ndarray, probability: float, rng: np.random.Generator) -> np.ndarray:
    """With ``probability``, one band of frequency bins and one of frames (each up to 1/8 of the patch,
    contiguous) set to the patch's mean: SpecAugment's masks."""
    patch = np.array(patch, dtype=np.float32)  # a copy: the crop may be a view of the stored window
    if rng.random() < probability:
        bins, frames = patch.shape
        fill = patch.mean()
        f0, f_width = rng.integers(bins), rng.integers(1, max(2, bins // 8))
        t0, t_width = rng.integers(frames), rng.integers(1, max(2, frames // 8))
        patch[f0 : f0 + f_width] = fill
        patch[:, t0 : t0 + t_width] = fill
    return patch


def patches_per_track(tracks: pd.DataFrame, patch_seconds: float) -> np.ndarray:
    """Non-overlapping patches in each track's valid audio (at least one): how often an epoch draws
    the track, whatever ``--patch-hop`` evaluation reads it with."""
    return patch_count(tracks["valid_s"].to_numpy(), patch_seconds, 1.0)


def epoch_order(counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The tracks of one epoch, shuffled: track ``i`` appears ``counts[i]`` times."""
    return rng.permutation(np.repeat(np.arange(len(counts)), counts))


def training_batches(
    reader: PatchReader, tracks: pd.DataFrame, labels: np.ndarray, augment: Augment, *, batch_size: int
) -> Any:
    """An endless ``tf.data`` stream of augmented random patches from ``tracks``, batched and prefetched;
    every ``ceil(sum(patches_per_track) / batch_size)`` batches are one epoch of :func:`epoch_order`."""
    import tensorflow as tf

    rows, valid = tracks["row"].to_numpy(), tracks["valid_s"].to_numpy()
    counts = patches_per_track(tracks, reader.patch_seconds)

    def patches() -> Iterator[tuple[Any, int]]:
        while True:
            for i in epoch_order(counts, augment.rng):
                yield model_inputs(random_patch(reader, int(rows[i]), float(valid[i]), augment)), int(labels[i])

    signature = (model_inputs(_input_signature(reader)), tf.TensorSpec((), tf.int32))
    return (
        tf.data.Dataset.from_generator(patches, output_signature=signature).batch(batch_size).prefetch(tf.data.AUTOTUNE)
    )


def _input_signature(reader: PatchReader) -> tuple[Any, ...]:
    import tensorflow as tf

    return tuple(
        tf.TensorSpec((array.shape[1], frames), tf.float32)
        for array, frames in zip(reader.arrays, reader.arch.patch_frames, strict=True)
    )
