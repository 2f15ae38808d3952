"""The ingest flow: list → diff against the manifest → allocate rows → map shards → commit."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from prefect import flow, unmapped

from genreflow.flows.mapping import as_they_finish
from genreflow.pipeline.audio import ClipWindow
from genreflow.pipeline.datasets import DEFAULT_WINDOW_S as DATASET_WINDOW_S
from genreflow.pipeline.errors import ParameterError, StoreError
from genreflow.pipeline.extract import ExtractionSpec, Shard, ShardResult
from genreflow.pipeline.features import parse_feature_sets
from genreflow.pipeline.ingest import (
    FailedTrack,
    IngestSummary,
    commit_run,
    new_run_id,
    plan_shards,
    recover_interrupted_runs,
    select_work,
    summarise_run,
)
from genreflow.pipeline.ingest_config import (
    DEFAULT_CHANNEL_VIEWS,
    DEFAULT_DATASET,
    DEFAULT_FEATURE_SETS,
    DEFAULT_FMA_SUBSET,
    DEFAULT_MIN_DURATION_S,
    DEFAULT_SHARD_SIZE,
    DEFAULT_WINDOW_S,
)
from genreflow.pipeline.store import FeatureStore, StoreLayout, read_manifest
from genreflow.pipeline.store.features import store_attrs
from genreflow.tasks.ingest import extract_shard, scan_source
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
    fma_subset: str = DEFAULT_FMA_SUBSET,
    storage_options: Mapping[str, Any] | None = None,
    show_progress: bool = True,
) -> IngestSummary:
    """Bring new and changed tracks of ``source`` into the feature store at ``store``.

    Returns the run's summary: counts per status and label, failures with reasons, tracks left
    unprocessed by a failed shard (selected again next run), per-shard timings and memory.
    """
    started = time.perf_counter()
    sets = parse_feature_sets(list(feature_sets))
    if shard_size < 1:
        raise ParameterError(f"shard-size must be at least 1, got {shard_size}")
    layout = StoreLayout(store, dict(storage_options or {}))
    catalogue = scan_source(source, dataset=dataset, fma_subset=fma_subset, storage_options=storage_options)
    phases: dict[str, float] = {}
    mark = started

    def lap(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        phases[name], mark = now - mark, now

    lap("scan_s")
    detected = catalogue["dataset"].iloc[0] if len(catalogue) else dataset
    window = ClipWindow(seconds=_window_seconds(layout, window_s, detected), min_seconds=min_duration_s)

    features = FeatureStore(layout)
    features.ensure(sets, window=window, channel_views=tuple(channel_views))
    recovered = recover_interrupted_runs(layout, features)
    work = select_work(catalogue, read_manifest(layout), feature_sets=sets, retry_failed=retry_failed)

    run_id = new_run_id()
    views = len(channel_views)
    lap("plan_s")
    results: list[ShardResult] = []
    unprocessed: list[FailedTrack] = []
    if len(work):
        row_start = features.allocate(len(work) * views)
        shards = plan_shards(work, run_id=run_id, row_start=row_start, rows_per_track=views, shard_size=shard_size)
        spec = ExtractionSpec(sets, window, tuple(channel_views))
        results, unprocessed = _run_shards(shards, spec, layout, show_progress=show_progress)
    lap("extract_s")
    committed = commit_run(layout, features, run_id, [row for r in results for row in r.rows])
    lap("commit_s")

    summary = summarise_run(
        committed,
        results=results,
        unprocessed=unprocessed,
        run_id=run_id,
        source=source,
        store=store,
        dataset=detected,
        listed=len(catalogue),
        selected=len(work),
        recovered_runs=tuple(recovered),
        feature_sets=tuple(fs.name for fs in sets),
        wall_s=time.perf_counter() - started,
        phases=phases,
    )
    publish_ingest_report(summary)
    return summary


def _run_shards(
    shards: list[Shard], spec: ExtractionSpec, layout: StoreLayout, *, show_progress: bool
) -> tuple[list[ShardResult], list[FailedTrack]]:
    """Map the shard task over the cluster; a shard that fails after its retries leaves its tracks
    unprocessed (selected again next run) instead of stopping the others."""
    futures = extract_shard.map(shards, spec=unmapped(spec), layout=unmapped(layout))
    results: list[ShardResult] = []
    unprocessed: list[FailedTrack] = []
    for shard, outcome in as_they_finish(futures, shards, desc="ingest", show_progress=show_progress):
        if isinstance(outcome, ShardResult):
            results.append(outcome)
        else:
            unprocessed += [FailedTrack(t.uri, f"shard failed: {outcome}") for t in shard.tracks]
    return results, unprocessed


def _window_seconds(layout: StoreLayout, requested: float | None, dataset: str) -> float:
    """The requested window, else the existing store's, else the dataset's default."""
    if requested is not None:
        return float(requested)
    try:
        return float(store_attrs(layout)["window_s"])
    except (StoreError, KeyError):  # no store yet, or one made before settings were recorded
        return DATASET_WINDOW_S.get(dataset, DEFAULT_WINDOW_S)
