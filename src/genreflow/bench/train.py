"""``genreflow bench train``: model throughput on this machine, the Keras port against the original
TF1 graph on the same patches, and one training epoch on the demo store, in one run."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from genreflow.bench.clips import music_patches
from genreflow.infra.settings import Settings

BATCH = 32
PAIRED_ROUNDS = 9  # port and TF1 take turns this many times


def bench_train(settings: Settings, *, patches: int, directory: Path | None) -> str:
    """Patches/s of training steps and inference per backbone, port vs TF1, and a demo-store epoch."""
    from genreflow.infra.devices import select_device

    device = select_device("auto")
    workdir = Path(directory or tempfile.mkdtemp(prefix="genreflow-bench-train-"))
    inputs = music_patches(patches)
    lines = [f"genreflow bench train: {patches} patches of 3 s, batch {BATCH}, on {device}"]
    for name in ("musicnn-msd", "musicnn-mtt", "vgg-msd", "vgg-mtt", "cnn2"):
        row = throughput(name, inputs)
        lines.append(
            f"  {name:12s} train {row['train']:7.1f} patches/s   inference {row['inference']:7.1f} patches/s"
            + (
                f"   TF1 graph {row['tf1']:7.1f} patches/s   port {row['ratio']:.2f}x TF1"
                f" (median of {PAIRED_ROUNDS} rounds, {row['ratio_low']:.2f}-{row['ratio_high']:.2f})"
                if "tf1" in row
                else ""
            )
        )
    epoch_s, tracks = _demo_epoch(settings, workdir)
    lines.append(
        f"  one epoch of musicnn-msd (head phase) on the demo store: {epoch_s:.1f} s for {tracks} training tracks"
    )
    return "\n".join(lines)


def _rate(run: Callable[[], Any], n: int, repeats: int = 3) -> float:
    return n / min(_timings({"run": run}, repeats)["run"])


def _timings(runs: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[float]]:
    """Seconds of each run in each of ``repeats`` rounds; runs take turns (the first going first in
    every other round) so machine drift and order hit them alike."""
    for run in runs.values():
        run()  # warm-up: tracing and allocation
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(repeats):
        for name in list(runs)[:: -1 if round_ % 2 else 1]:
            seconds[name].append(_timed(runs[name]))
    return seconds


def _timed(run: Callable[[], Any]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def throughput(name: str, inputs: dict[str, np.ndarray]) -> dict[str, float]:
    import keras

    from genreflow.pipeline.models import musicnn
    from genreflow.pipeline.models.architectures import get_architecture
    from genreflow.pipeline.models.tf1_reference import tf1_tagger

    arch = get_architecture(name)
    x = inputs[arch.inputs[0]]
    y = np.arange(len(x)) % 8
    model = arch.build(arch, 8)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    batches = [(x[i : i + BATCH], y[i : i + BATCH]) for i in range(0, len(x) - BATCH + 1, BATCH)]
    row = {
        "train": _rate(lambda: [model.train_on_batch(bx, by) for bx, by in batches], len(batches) * BATCH),
    }
    if arch.pretrained:
        # The port as scoring runs it (`score --model <name>-tags`: store patches in, tags out, one
        # predict_on_batch per batch) against the original graph's session.run on the same batches.
        tags = musicnn.tags_model(arch.pretrained)
        reference = tf1_tagger(musicnn.checkpoint_dir(arch.pretrained))
        frames_first = np.ascontiguousarray(x.transpose(0, 2, 1))
        runs = {
            "inference": lambda: _per_batch(tags.predict_on_batch, x),
            "tf1": lambda: _per_batch(reference, frames_first),
        }
        seconds = _timings(runs, repeats=PAIRED_ROUNDS)
        row.update({run: len(x) / min(times) for run, times in seconds.items()})
        # Each round's TF1/port time ratio: the comparison, free of drift between rounds.
        ratios = np.divide(seconds["tf1"], seconds["inference"])
        row.update(ratio=float(np.median(ratios)), ratio_low=float(ratios.min()), ratio_high=float(ratios.max()))
    else:
        row["inference"] = _rate(lambda: _per_batch(model.predict_on_batch, x), len(x))
    return row


def _per_batch(run: Callable[[np.ndarray], Any], x: np.ndarray) -> list[Any]:
    return [run(x[i : i + BATCH]) for i in range(0, len(x), BATCH)]


def _demo_epoch(settings: Settings, workdir: Path) -> tuple[float, int]:
    """Ingest a small demo catalogue and time one head-phase epoch of the musicnn-msd transfer model."""
    from genreflow.flows.runtime import run_ingest
    from genreflow.pipeline.demo import make_demo_catalogue
    from genreflow.pipeline.models.architectures import get_architecture
    from genreflow.pipeline.patches import PatchReader
    from genreflow.pipeline.store import StoreLayout
    from genreflow.pipeline.training.config import TrainConfig
    from genreflow.pipeline.training.data import labelled_tracks
    from genreflow.pipeline.training.fit import fit

    catalogue, store = workdir / "catalogue", workdir / "store"
    if not (catalogue / "genres").exists():
        make_demo_catalogue(catalogue, broken=False)
    run_ingest(dataclasses.replace(settings, store=str(store)), source=str(catalogue), store=str(store),
               feature_sets=["musicnn96"], show_progress=False)  # fmt: skip
    layout = StoreLayout(str(store))
    arch = get_architecture("musicnn-msd")
    data = labelled_tracks(layout, arch.inputs)
    config = TrainConfig(epochs=1, fine_tune_epochs=0)
    with tempfile.TemporaryDirectory() as state:
        result = fit(arch, PatchReader(layout, arch), data, config, Path(state))
    return result.seconds, data.counts()["train"]
