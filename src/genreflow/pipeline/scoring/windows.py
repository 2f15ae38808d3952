"""Patches to score and their per-track average.

From the store, a track's patches are the non-overlapping 3-s windows of its stored clip (what the
test metrics were computed on). With ``full_track``, the audio is decoded again, block by block,
and cut into overlapping windows over its whole length: seed 001's whole-song slicing.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import BinaryIO

import numpy as np

from ..audio import resample, stream_blocks
from ..errors import DecodeError
from ..features import get_feature_set
from ..patches import crop_frames

BLOCK_S = 60.0  # audio decoded at a time in full-track mode


class TrackAverager:
    """Runs patches of many tracks through ``predict`` in full batches; keeps per-track sums.

    Batching across tracks keeps the model busy (a track has ~10 patches) while memory stays at
    one batch, whatever the number or length of the tracks.
    """

    def __init__(self, predict: Callable[[list[np.ndarray]], np.ndarray], *, batch_size: int = 64) -> None:
        self.predict = predict
        self.batch_size = batch_size
        self.sums: dict[Hashable, np.ndarray] = {}
        self.counts: dict[Hashable, int] = {}
        self._pending: list[tuple[Hashable, list[np.ndarray]]] = []
        self._pending_patches = 0
        self.n_patches = 0

    def add(self, key: Hashable, patches: Sequence[np.ndarray]) -> None:
        """Queue ``patches`` (one array per model input, [shape=(n, bins, frames)]) of track ``key``."""
        self._pending.append((key, list(patches)))
        self._pending_patches += len(patches[0])
        self.counts[key] = self.counts.get(key, 0) + len(patches[0])
        while self._pending_patches >= self.batch_size:
            self._run(self.batch_size)

    def discard(self, key: Hashable) -> None:
        """Forget track ``key`` (its audio failed part-way): queued patches, sums and count."""
        kept = [(k, patches) for k, patches in self._pending if k != key]
        self._pending_patches = sum(len(patches[0]) for _, patches in kept)
        self._pending = kept
        self.sums.pop(key, None)
        self.counts.pop(key, None)

    def means(self) -> dict[Hashable, np.ndarray]:
        """Mean probabilities per track, float32 [shape=(n_labels,)], after the last batch."""
        while self._pending_patches:
            self._run(self._pending_patches)
        return {key: (total / self.counts[key]).astype(np.float32) for key, total in self.sums.items()}

    def _run(self, size: int) -> None:
        """Predict the first ``size`` queued patches (splitting a track across batches if need be)."""
        owners: list[Hashable] = []
        taken: list[list[np.ndarray]] = []
        while len(owners) < size:
            key, patches = self._pending[0]
            room = size - len(owners)
            head, rest = [p[:room] for p in patches], [p[room:] for p in patches]
            owners += [key] * len(head[0])
            taken.append(head)
            if len(rest[0]):
                self._pending[0] = (key, rest)
            else:
                self._pending.pop(0)
        batch = [np.concatenate(parts) for parts in zip(*taken, strict=True)]
        probabilities = self.predict(batch)
        self._pending_patches -= size
        self.n_patches += size
        for key, row in zip(owners, probabilities, strict=True):
            if key in self.sums:
                self.sums[key] += row
            else:
                self.sums[key] = row.astype(np.float64)


def audio_patches(
    source: str | BinaryIO, inputs: Sequence[str], patch_frames: Sequence[int], *, hop_s: float | None = None
) -> Iterator[list[np.ndarray]]:
    """Overlapping patches over the whole of a file, one list (per model input) per decoded block.

    Windows start every ``hop_s`` (default: half a patch; rounded to whole frames of the first input)
    while they fit in the audio; a file
    shorter than one patch gives one zero-padded window.

    Raises
    ------
    DecodeError
        The file cannot be decoded (the message says why).
    """
    sets = [get_feature_set(name) for name in inputs]
    rates = [fs.sample_rate / fs.hop_length for fs in sets]
    patch_s = patch_frames[0] / rates[0]
    hop_s = max(1, round((hop_s or patch_s / 2) * rates[0])) / rates[0]  # whole frames: no jitter between windows
    step_s = hop_s * max(1, round(BLOCK_S / hop_s))
    emitted = 0
    # Each block carries one hop more than a window past the next block's start, and a window is
    # cut from the block where it has audio on both sides: its first frames see the real signal
    # before it, so windows equal those of the whole signal at once.
    for block in stream_blocks(source, block_s=step_s, overlap_s=patch_s + hop_s):
        sr = block.sample_rate
        begin_s, span_s = block.start / sr, block.samples.shape[1] / sr
        first = int(np.ceil((begin_s + (hop_s if block.start else 0.0)) / hop_s - 1e-6))
        if block.last:
            stop = int(np.floor((begin_s + span_s - patch_s) / hop_s + 1e-6)) + 1
            stop = max(stop, first + 1) if emitted == 0 else stop  # shorter than a patch: one padded window
        else:
            next_begin_s = (block.start + round(step_s * sr)) / sr
            stop = int(np.ceil((next_begin_s + hop_s) / hop_s - 1e-6))
        starts = np.arange(first, stop) * hop_s
        if len(starts) == 0:
            continue
        mono = block.samples.mean(axis=0) if block.samples.shape[0] > 1 else block.samples[0]
        per_input = []
        for fs, rate, frames in zip(sets, rates, patch_frames, strict=True):
            features = fs.compute(resample(mono, orig_sr=sr, target_sr=fs.sample_rate), sr=fs.sample_rate)
            per_input.append(np.stack([crop_frames(features, round((s - begin_s) * rate), frames) for s in starts]))
        emitted += len(starts)
        yield per_input
    if emitted == 0:
        raise DecodeError("no audio to score")
