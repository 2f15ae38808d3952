"""Training patches: random 3-s crops of the stored windows, augmented, as an endless ``tf.data`` stream."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..patches import PatchReader, crop_frames, model_inputs


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


def random_patch(reader: PatchReader, row: int, valid_s: float, augment: Augment) -> list[np.ndarray]:
    """One random 3-s patch of a track (the same seconds for every input), augmented."""
    rng = augment.rng
    view = int(rng.integers(len(reader.views))) if augment.channel_split and len(reader.views) > 1 else None
    features = reader.track(row, view=view)
    seconds = reader.patch_seconds * (1 + rng.uniform(-augment.zoom, augment.zoom))
    start_s = rng.uniform(0, max(0.0, valid_s - seconds))
    out = []
    gain_db = rng.uniform(-augment.gain_db, augment.gain_db)
    for f, size, rate, scale in zip(features, reader.arch.patch_frames, reader.frame_rates, reader.scales, strict=True):
        span = max(2, round(seconds * rate))
        patch = crop_frames(f, round(start_s * rate), span)
        if span != size:  # zoom: stretch the cropped span back to the patch length
            positions = np.linspace(0, span - 1, size)
            patch = np.stack([np.interp(positions, np.arange(span), band) for band in patch]).astype(np.float32)
        out.append(_augment(with_gain(patch, gain_db, scale), augment))
    return out


def with_gain(patch: np.ndarray, gain_db: float, scale: str) -> np.ndarray:
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
