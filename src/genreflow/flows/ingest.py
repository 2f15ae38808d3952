"""The ingest flow: list → diff against the manifest → allocate rows → map shards → commit."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from prefect import flow, unmapped

from genreflow.flows.leases import holding_lease
from genreflow.flows.mapping import as_they_finish, workers
from genreflow.infra.settings import Settings
from genreflow.pipeline.audio import ClipWindow
from genreflow.pipeline.datasets import source_uri
from genreflow.pipeline.errors import ParameterError
from genreflow.pipeline.extract import ExtractionSpec, Shard, ShardResult
from genreflow.pipeline.features import parse_feature_sets
from genreflow.pipeline.ingest import (
    FailedTrack,
    IngestSummary,
    commit_run,
    detected_dataset,
    new_run_id,
    plan_shards,
    recover_interrupted_runs,
    select_work,
    summarise_run,
    vanished,
    window_seconds,
)
from genreflow.pipeline.ingest_config import (
    DEFAULT_CHANNEL_VIEWS,
    DEFAULT_DATASET,
    DEFAULT_FEATURE_SETS,
    DEFAULT_FMA_SUBSET,
    DEFAULT_MIN_DURATION_S,
    DEFAULT_SHARD_SIZE,
)
from genreflow.pipeline.store import FeatureStore, StoreLayout, read_manifest
from genreflow.tasks.ingest import extract_shard, scan_source, shard_timeout_s
from genreflow.tasks.reports import publish_ingest_report


@flow(name="ingest", validate_parameters=False)
def ingest_flow(
    source: str,
    store: str,
    *,
    dataset: str = DEFAULT_DATASET,
    feature_sets: Sequence[str] = DEFAULT_FEATURE_SETS,
    shard_size: int = DEFAULT_SHARD_SIZE,
    window_s: float | None = None,
    min_duration_s: float = DEFAULT_MIN_DURATION_S,
    channel_views: Sequence[str] = DEFAULT_CHANNEL_VIEWS,
    retry_failed: bool = False,
    allow_empty_source: bool = False,
    wait_s: float = 0.0,
    fma_subset: str = DEFAULT_FMA_SUBSET,
    storage_options: Mapping[str, Any] | None = None,
    settings: Settings | Mapping[str, Any] | None = None,
    show_progress: bool = True,
) -> IngestSummary:
    """Bring new and changed tracks of ``source`` into the feature store at ``store``, and retire the
    files that vanished from it (``removed`` rows; a source listing nothing while the store holds its
    files is refused as an outage unless ``allow_empty_source``).

    Listing, diffing and committing run in this process; the shards run on the Dask workers that
    ``settings`` describe (a local cluster, or an existing scheduler), started only when there is
    work, so a night with nothing new costs no worker start, and a small run needs none
    (``Settings.decodes_in_process``: it runs on this process's threads, as ``settings=None`` does).
    The run holds the store's lease while it writes (waiting up to ``wait_s`` for another run's).

    Returns the run's summary: counts per status and label, failures with reasons, tracks left
    unprocessed by a failed shard (selected again next run), per-shard timings and memory.
    """
    started = time.perf_counter()
    settings = Settings.coerce(settings)  # a deployment's parameters arrive as JSON
    sets = parse_feature_sets(list(feature_sets))
    if shard_size < 1:
        raise ParameterError(f"shard-size must be at least 1, got {shard_size}")
    layout = StoreLayout(store, dict(storage_options or {}))
    phases: dict[str, float] = {}
    mark = started

    def lap(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        phases[name], mark = now - mark, now

    run_id = new_run_id()
    # Listed, diffed and committed under the lease: a run that waited for another sees what it wrote,
    # and recovery only ever finds receipts of runs that died.
    with holding_lease(layout, f"ingest {run_id}", wait_s=wait_s) as lease:
        catalogue = scan_source(source, dataset=dataset, fma_subset=fma_subset, storage_options=storage_options)
        lap("scan_s")
        detected = detected_dataset(catalogue, dataset)
        window = ClipWindow(seconds=window_seconds(layout, window_s, detected), min_seconds=min_duration_s)
        features = FeatureStore(layout)
        features.ensure(sets, window=window, channel_views=tuple(channel_views))
        recovered = recover_interrupted_runs(layout, features)
        manifest = read_manifest(layout)
        work = select_work(catalogue, manifest, feature_sets=sets, retry_failed=retry_failed)
        removed = vanished(
            catalogue,
            manifest,
            source=source_uri(source, storage_options=storage_options),
            run_id=run_id,
            allow_empty_source=allow_empty_source,
        )

        views = len(channel_views)
        lap("plan_s")
        results: list[ShardResult] = []
        unprocessed: list[FailedTrack] = []
        if len(work):  # workers start only when there is something to decode
            row_start = features.allocate(len(work) * views)
            in_process = settings is not None and settings.decodes_in_process(len(work))
            if in_process:  # two shards side by side on this process's threads
                shard_size = min(shard_size, -(-len(work) // 2))
            shards = plan_shards(work, run_id=run_id, row_start=row_start, rows_per_track=views, shard_size=shard_size)
            spec = ExtractionSpec(sets, window, tuple(channel_views))
            runner = None if in_process else settings
            results, unprocessed = _run_shards(shards, spec, layout, settings=runner, show_progress=show_progress)
        lap("extract_s")
        lease.ensure_held()  # a run that lost its lease (suspended past its expiry) commits nothing
        committed = commit_run(layout, features, run_id, removed + [row for r in results for row in r.rows])
        lap("commit_s")

    summary = summarise_run(
        [row for rows in recovered.values() for row in rows] + committed,
        results=results,
        unprocessed=unprocessed,
        run_id=run_id,
        source=source,
        store=store,
        dataset=detected,
        listed=len(catalogue),
        selected=len(work),
        recovered_runs=tuple(recovered),  # their rows are counted above: a recovered failure is a failure
        feature_sets=tuple(fs.name for fs in sets),
        wall_s=time.perf_counter() - started,
        phases=phases,
    )
    publish_ingest_report(summary)
    return summary


def _run_shards(
    shards: list[Shard], spec: ExtractionSpec, layout: StoreLayout, *, settings: Settings | None, show_progress: bool
) -> tuple[list[ShardResult], list[FailedTrack]]:
    """Map the shard task over the workers; a shard that fails after its retries leaves its tracks
    unprocessed (selected again next run) instead of stopping the others."""
    results: list[ShardResult] = []
    unprocessed: list[FailedTrack] = []
    with workers(settings) as runner:
        task = extract_shard.with_options(timeout_seconds=shard_timeout_s(max(len(s.tracks) for s in shards)))
        futures = runner.map(task, {"shard": shards, "spec": unmapped(spec), "layout": unmapped(layout)})
        for shard, outcome in as_they_finish(futures, shards, desc="ingest", show_progress=show_progress):
            if isinstance(outcome, ShardResult):
                results.append(outcome)
            else:
                unprocessed += [FailedTrack(t.uri, f"shard failed: {outcome}") for t in shard.tracks]
    return results, unprocessed
