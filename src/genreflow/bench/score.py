"""``genreflow bench score``: bare ``predict_on_batch`` against the scoring flow on the same patches,
from the store and from the audio (``--full-track``), in one run."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from genreflow.bench.clips import make_clips
from genreflow.infra.settings import Settings
from genreflow.pipeline.scoring.summary import ScoreSummary

MODEL = "musicnn-msd-tags"  # the musicnn-msd backbone the default genre model is built on; needs no training
BATCH = 64


def bench_score(settings: Settings, *, tracks: int, seconds: float, directory: Path | None) -> str:
    """Patches/s of bare ``predict``, then tracks/s and patches/s of the flow from the store and from
    audio; the flow's overhead is its whole wall time (cluster start included) over bare ``predict``'s."""
    from genreflow.flows.runtime import prepare, run_ingest, run_score

    prepare(settings)
    workdir = Path(directory or tempfile.mkdtemp(prefix="genreflow-bench-score-"))
    make_clips(workdir / "clips", tracks, seconds)
    store = str(workdir / "store")
    run_ingest(settings, source=str(workdir / "clips"), store=store, dataset="unlabelled",
               feature_sets=["musicnn96"], show_progress=False)  # fmt: skip
    bare_rate, n_patches = bare_predict(store)
    first_rate = bare_rate()

    runs = {}
    for mode, full_track in (("store", False), ("full-track", True)):
        started = time.perf_counter()
        summary = run_score(
            dataclasses.replace(settings), store=store, model=MODEL, tracks="all", full_track=full_track,
            out=str(workdir / f"scores-{mode}"), batch_size=BATCH, show_progress=False,
        )  # fmt: skip
        runs[mode] = (time.perf_counter() - started, summary)
    last_rate = bare_rate()  # again after the flows: this machine's speed drifts between runs
    patches_per_s = (first_rate + last_rate) / 2
    store_s = runs["store"][0]
    bare_s = n_patches / patches_per_s
    workers = settings.workers if not settings.dask_address else "cluster"
    return "\n".join(
        [
            f"genreflow bench score: {tracks} MP3 clips of {seconds:g} s, {MODEL}, batch {BATCH}, workers {workers}",
            f"  bare predict_on_batch on the store's {n_patches} patches: {patches_per_s:.1f} patches/s "
            f"({bare_s:.1f} s; {first_rate:.1f} before the flows, {last_rate:.1f} after)",
            *(_flow_line(mode, wall_s, summary) for mode, (wall_s, summary) in runs.items()),
            f"  flow overhead over bare predict: {100 * (store_s / bare_s - 1):+.0f} % (target: within 20 %)",
        ]
    )


def _flow_line(mode: str, wall_s: float, summary: ScoreSummary) -> str:
    return (
        f"  score flow, {mode:10s}: {summary.scored / wall_s:6.2f} tracks/s, {summary.n_patches / wall_s:6.1f} "
        f"patches/s ({summary.n_patches} windows in {wall_s:.1f} s; {summary.tasks} tasks, "
        f"{summary.compute_s:.1f} s inside them)"
    )


def bare_predict(store: str) -> tuple[Callable[[], float], int]:
    """A timer of ``predict_on_batch`` on every stored patch of every track, held in memory (read and
    warmed up once), and the number of patches."""
    from genreflow.pipeline.patches import PatchReader, evaluation_patches
    from genreflow.pipeline.scoring.scorers import load_scorer, resolve_model
    from genreflow.pipeline.store import StoreLayout, current_tracks, read_manifest

    layout = StoreLayout(store)
    scorer = load_scorer(layout, resolve_model(layout, MODEL))
    tracks = current_tracks(read_manifest(layout)).query("status == 'ok'")
    per_input = evaluation_patches(PatchReader(layout, scorer.info, hop=scorer.info.patch_hop), tracks)[0]
    n_patches = len(per_input[0])
    batches = [[patches[i : i + BATCH] for patches in per_input] for i in range(0, n_patches, BATCH)]
    scorer.predict(batches[0])  # trace once, outside the timing

    def patches_per_s() -> float:
        # The flow's own call (one predict_on_batch per batch): model.predict's tf.data loop is ~15 %
        # slower on the same batches and would flatter the flow.
        started = time.perf_counter()
        for batch in batches:
            scorer.predict(batch)
        return n_patches / (time.perf_counter() - started)

    return patches_per_s, n_patches
