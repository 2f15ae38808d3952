"""``genreflow score``: plan → retire superseded rows → map chunk tasks, write each file → failures → report.

:func:`write_outputs` is those steps for any per-track output; ``genreflow embed`` runs them too."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from prefect import flow, unmapped

from genreflow.flows.leases import holding_lease
from genreflow.flows.mapping import as_they_finish, track_bar, workers
from genreflow.infra.devices import cpu_threads_per_worker
from genreflow.infra.settings import Settings
from genreflow.pipeline.errors import ParameterError
from genreflow.pipeline.scoring.config import DEFAULT_MODEL, DEFAULT_THRESHOLD, MODES, ScoreSpec
from genreflow.pipeline.scoring.plan import ScorePlan, plan_scoring, read_track_ids
from genreflow.pipeline.scoring.scorers import ModelInfo, describe_model, resolve_model
from genreflow.pipeline.scoring.shard import WRITTEN_AT, ChunkScores, ScoreChunk
from genreflow.pipeline.scoring.summary import ScoreSummary, summarise_scoring
from genreflow.pipeline.store import StoreLayout, read_manifest
from genreflow.pipeline.store.lease import StoreLease
from genreflow.pipeline.store.scores import ScoresLayout, scored_tracks
from genreflow.tasks.reports import publish_score_report
from genreflow.tasks.score import (
    chunk_timeout_s,
    record_failures_task,
    retire_scores,
    score_chunk_task,
    write_scores,
)


@flow(name="genreflow-score", validate_parameters=False)
def score_flow(
    store: str,
    *,
    model: str = DEFAULT_MODEL,
    tracks: str | Sequence[str] = "new",
    full_track: bool = False,
    out: str | None = None,
    hop_s: float | None = None,
    batch_size: int = ScoreSpec.batch_size,
    chunk_size: int | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    threads: int | None = None,
    wait_s: float = 0.0,
    storage_options: Mapping[str, Any] | None = None,
    settings: Settings | Mapping[str, Any] | None = None,
    show_progress: bool = True,
) -> ScoreSummary:
    """Score ``tracks`` of the store with ``model`` (``NAME[@VERSION]``, a registered model's
    production version by default, or a zero-shot tagger) and write its Parquet files.

    ``tracks`` is ``new``, ``all``, the URI of a file of track ids, or a list of ids. ``threads``
    caps the model's CPU threads in each worker process (default: local workers split the cores). Chunks run
    on the Dask workers ``settings`` describe, started only when there is something to score (so no
    worker loads a model on a night with nothing new); ``None``: in this process's threads. The run
    holds the store's lease while it writes (waiting up to ``wait_s`` for another run's).
    Returns the run's summary: counts, top-label distribution, low-confidence count, failures, timings.
    """
    started = time.perf_counter()
    settings = Settings.coerce(settings)  # a deployment's parameters arrive as JSON
    if threads is None and settings is not None and not settings.dask_address and settings.cluster == "local":
        threads = cpu_threads_per_worker(settings.workers)
    spec = ScoreSpec(full_track=full_track, hop_s=hop_s, batch_size=batch_size, threads=threads)
    if not 0 <= threshold <= 1:
        raise ParameterError(f"threshold is a probability, between 0 and 1; got {threshold}")
    if chunk_size is not None and chunk_size < 1:
        raise ParameterError(f"chunk-size must be at least 1, got {chunk_size}")
    layout = StoreLayout(store, dict(storage_options or {}))
    ref = resolve_model(layout, model)
    info = describe_model(layout, ref)
    scores = ScoresLayout(out or layout.scores, dict(storage_options or {}))
    if isinstance(tracks, str) and tracks not in MODES:
        tracks = read_track_ids(tracks, storage_options=storage_options)
    with holding_lease(layout, f"score {ref}", wait_s=wait_s) as lease:  # planned under it: no ingest between
        run = write_outputs(layout, scores, info, spec, tracks=tracks, chunk_size=chunk_size, lease=lease,
                            settings=settings, show_progress=show_progress)  # fmt: skip
    summary = summarise_scoring(
        info,
        run.results,
        attempted=run.attempted,
        failures=run.failures,
        threshold=threshold,
        mode="full-track" if full_track else "store",
        store=store,
        scores=scores.version_dir(ref.name, ref.version),
        selected=run.plan.n_tracks,
        unscorable=len(run.plan.failures),
        retired=run.retired,
        tasks=len(run.plan.chunks),
        plan_s=run.plan_s,
        wall_s=time.perf_counter() - started,
    )
    publish_score_report(summary)
    return summary


@dataclass(frozen=True)
class OutputsRun:
    """What :func:`write_outputs` did: its plan, the chunks' results, the tracks tried that failed
    (``attempted``), the failures table after the run, the rows retired, and seconds spent planning."""

    plan: ScorePlan
    results: list[ChunkScores]
    attempted: list[dict[str, str]]
    failures: pd.DataFrame
    retired: int
    plan_s: float

    @property
    def changed(self) -> bool:
        """Whether any file of the version got or lost a row."""
        return bool(self.retired or any(r.track_ids for r in self.results))


def write_outputs(
    layout: StoreLayout,
    root: ScoresLayout,
    info: ModelInfo,
    spec: ScoreSpec,
    *,
    tracks: str | Sequence[str],
    chunk_size: int | None,
    lease: StoreLease,
    settings: Settings | None,
    show_progress: bool,
) -> OutputsRun:
    """The steps scores and embeddings share, under ``lease``: plan (the manifest against the rows
    ``root`` holds for the version), retire superseded rows, score the chunks on the workers and
    write each shard's file as its chunks come back (``spec.output`` decides what a track gets),
    then bring the failures table up to date."""
    started = time.perf_counter()
    ref = info.ref
    plan = plan_scoring(
        read_manifest(layout),
        scored_tracks(root, ref.name, ref.version, written_at=WRITTEN_AT[spec.output]),
        feature_sets=info.inputs,
        tracks=tracks,
        chunk_size=chunk_size,
    )
    plan_s = time.perf_counter() - started
    lease.ensure_held()
    retired = retire_scores(root, ref, plan.retire) if plan.retire else 0
    results, crashed = (
        ([], [])
        if not plan.chunks
        else _run_chunks(plan.chunks, spec, layout, root, info, lease=lease, settings=settings,
                         show_progress=show_progress)
    )  # fmt: skip
    attempted = [f for r in results for f in r.failures] + crashed
    lease.ensure_held()
    failures = record_failures_task(root, ref, plan.failures, attempted, plan.chunks)
    return OutputsRun(plan, results, attempted, failures, retired, plan_s)


def _run_chunks(
    chunks: list[ScoreChunk],
    spec: ScoreSpec,
    layout: StoreLayout,
    scores: ScoresLayout,
    info: ModelInfo,
    *,
    lease: StoreLease,
    settings: Settings | None,
    show_progress: bool,
) -> tuple[list[ChunkScores], list[dict[str, str]]]:
    """Map the chunk task; write each shard's file as soon as its last chunk is back. A chunk that
    fails after its retry lists its tracks as failures; the file still gets the other chunks' rows."""
    waiting = Counter(chunk.shard for chunk in chunks)
    done: dict[int, list[ChunkScores]] = {}
    results: list[ChunkScores] = []
    crashed: list[dict[str, str]] = []
    scored_at = datetime.now(UTC)
    total = sum(len(chunk.tracks) for chunk in chunks)
    with workers(settings) as runner, track_bar(total, desc="score", show_progress=show_progress) as bar:
        parameters = {"chunk": chunks, "spec": unmapped(spec), "layout": unmapped(layout), "ref": unmapped(info.ref)}
        longest = max(len(chunk.tracks) for chunk in chunks)
        task = score_chunk_task.with_options(timeout_seconds=chunk_timeout_s(longest, full_track=spec.full_track))
        futures = runner.map(task, parameters)
        for chunk, outcome in as_they_finish(futures, chunks, bar=bar):
            if isinstance(outcome, ChunkScores):
                done.setdefault(chunk.shard, []).append(outcome)
                results.append(outcome)
            else:
                crashed += [{"track_id": t.track_id, "uri": t.uri, "reason": f"task failed: {outcome}"}
                            for t in chunk.tracks]  # fmt: skip
            waiting[chunk.shard] -= 1
            if waiting[chunk.shard] == 0 and done.get(chunk.shard):
                shard_chunks = sorted(done.pop(chunk.shard), key=lambda r: r.index)
                lease.ensure_held()  # a run that lost its lease (suspended past its expiry) writes nothing more
                write_scores(scores, info, chunk.shard, shard_chunks, scored_at, spec.output)
    return results, crashed
