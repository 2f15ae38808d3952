"""The ingest flow: list → diff against the manifest → per batch: allocate rows → map shards → commit.

``backfill`` is the same flow under its own name, for a whole catalogue: the batches are what make
it bounded and resumable, and they are the same for a night's few tracks (one batch).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd
from prefect import flow, unmapped

from genreflow.flows.leases import holding_lease
from genreflow.flows.mapping import as_they_finish, track_bar, workers
from genreflow.infra.settings import Settings
from genreflow.pipeline.audio import ClipWindow
from genreflow.pipeline.datasets import source_uri
from genreflow.pipeline.errors import ParameterError
from genreflow.pipeline.extract import ExtractionSpec, Shard, ShardResult
from genreflow.pipeline.features import parse_feature_sets
from genreflow.pipeline.ingest import (
    FailedTrack,
    IngestSummary,
    RunTally,
    commit_run,
    detected_dataset,
    new_run_id,
    plan_batches,
    plan_shards,
    record_allocation,
    recover_interrupted_runs,
    select_work,
    vanished,
    window_seconds,
)
from genreflow.pipeline.ingest_config import (
    DEFAULT_BATCH_TRACKS,
    DEFAULT_CHANNEL_VIEWS,
    DEFAULT_DATASET,
    DEFAULT_FEATURE_SETS,
    DEFAULT_FMA_SUBSET,
    DEFAULT_MIN_DURATION_S,
    DEFAULT_SHARD_SIZE,
)
from genreflow.pipeline.store import FeatureStore, StoreLayout, read_manifest
from genreflow.pipeline.store.lease import StoreLease
from genreflow.tasks.ingest import extract_shard, scan_source, shard_timeout_s
from genreflow.tasks.reports import BatchProgress, publish_ingest_report
from genreflow.tasks.retries import LASTING_OS_ERRORS


@flow(name="ingest", validate_parameters=False)
def ingest_flow(
    source: str,
    store: str,
    *,
    dataset: str = DEFAULT_DATASET,
    feature_sets: Sequence[str] = DEFAULT_FEATURE_SETS,
    shard_size: int = DEFAULT_SHARD_SIZE,
    batch_tracks: int = DEFAULT_BATCH_TRACKS,
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
    The work goes in batches of ``batch_tracks``, each allocated, decoded and committed before the
    next, on the same workers: a killed run loses at most the batch in flight, and the next run
    commits that batch's finished shards and goes on. The run holds the store's lease while it
    writes (waiting up to ``wait_s`` for another run's).

    Returns the run's summary: counts per status and label, failures with reasons, tracks left
    unprocessed by a failed shard (selected again next run), per-shard timings and memory.
    """
    started = time.perf_counter()
    settings = Settings.coerce(settings)  # a deployment's parameters arrive as JSON
    sets = parse_feature_sets(list(feature_sets))
    for name, value in (("shard-size", shard_size), ("batch-tracks", batch_tracks)):
        if value < 1:
            raise ParameterError(f"{name} must be at least 1, got {value}")
    layout = StoreLayout(store, dict(storage_options or {}))
    phases: dict[str, float] = {}
    mark = started

    def lap(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        phases[name], mark = phases.get(name, 0.0) + now - mark, now

    run_id = new_run_id()
    tally = RunTally()
    # Listed, diffed and committed under the lease: a run that waited for another sees what it wrote,
    # and recovery only ever finds receipts of runs that died.
    with holding_lease(layout, f"ingest {run_id}", wait_s=wait_s) as lease:
        catalogue = scan_source(source, dataset=dataset, fma_subset=fma_subset, storage_options=storage_options)
        lap("scan_s")
        detected = detected_dataset(catalogue, dataset)
        window = ClipWindow(seconds=window_seconds(layout, window_s, detected), min_seconds=min_duration_s)
        features = FeatureStore(layout)
        features.ensure(sets, window=window, channel_views=tuple(channel_views))
        tally.add_recovered(recover_interrupted_runs(layout, features))
        manifest = read_manifest(layout)
        work = select_work(catalogue, manifest, feature_sets=sets, retry_failed=retry_failed)
        removed = vanished(
            catalogue,
            manifest,
            source=source_uri(source, storage_options=storage_options),
            run_id=run_id,
            allow_empty_source=allow_empty_source,
        )
        listed = len(catalogue)
        del catalogue, manifest  # a backfill's batches need only the work
        lap("plan_s")
        if len(work):  # workers start only when there is something to decode
            in_process = settings is not None and settings.decodes_in_process(len(work))
            batches = _Batches(
                layout, features, ExtractionSpec(sets, window, tuple(channel_views)), lease=lease, tally=tally,
                shard_size=shard_size, in_process=in_process, lap=lap,
            )  # fmt: skip
            batches.run(work, removed, run_id=run_id, batch_tracks=batch_tracks,
                        settings=None if in_process else settings, show_progress=show_progress)  # fmt: skip
        else:
            lease.ensure_held()
            tally.add(commit_run(layout, features, run_id, removed))
            lap("commit_s")

    summary = tally.summary(
        run_id=run_id,
        source=source,
        store=store,
        dataset=detected,
        listed=listed,
        selected=len(work),
        feature_sets=tuple(fs.name for fs in sets),
        wall_s=time.perf_counter() - started,
        phases=phases,
    )
    publish_ingest_report(summary)
    return summary


backfill_flow = ingest_flow.with_options(name="backfill")


class _Batches:
    """One run's batches, on one set of workers and behind one progress bar: each batch is allocated,
    its shards mapped, and committed (under the lease) before the next is planned."""

    def __init__(
        self,
        layout: StoreLayout,
        features: FeatureStore,
        spec: ExtractionSpec,
        *,
        lease: StoreLease,
        tally: RunTally,
        shard_size: int,
        in_process: bool,
        lap: Callable[[str], None],
    ) -> None:
        self.layout, self.features, self.spec = layout, features, spec
        self.lease, self.tally, self.lap = lease, tally, lap
        self.shard_size, self.in_process = shard_size, in_process

    def run(
        self,
        work: pd.DataFrame,
        removed: list[dict[str, Any]],
        *,
        run_id: str,
        batch_tracks: int,
        settings: Settings | None,
        show_progress: bool,
    ) -> None:
        batches = list(plan_batches(work, run_id=run_id, batch_tracks=batch_tracks))
        progress = BatchProgress(run_id, batches=len(batches), tracks=len(work))
        with workers(settings) as runner, track_bar(len(work), desc="ingest", show_progress=show_progress) as bar:
            done = 0
            for number, (batch_id, batch) in enumerate(batches):
                committed_before = removed if number == 0 else []  # retirements free their ids first
                self._batch(batch_id, batch, committed_before, runner=runner, bar=bar)
                done += len(batch)
                progress.advance(batches_done=number + 1, tracks_done=done)

    def _batch(
        self, batch_id: str, batch: pd.DataFrame, removed: list[dict[str, Any]], *, runner: Any, bar: Any
    ) -> None:
        views = len(self.spec.channel_views)
        # on the flow's threads: two shards side by side
        size = min(self.shard_size, -(-len(batch) // 2)) if self.in_process else self.shard_size
        row_start = self.features.allocate(len(batch) * views)
        shards = plan_shards(batch, run_id=batch_id, row_start=row_start, rows_per_track=views, shard_size=size)
        record_allocation(self.layout, shards)
        results, unprocessed, lasting = _run_shards(runner, shards, self.spec, self.layout, bar=bar)
        self.lap("extract_s")
        self.lease.ensure_held()  # a run that lost its lease (suspended past its expiry) commits nothing
        # in listing order, not the order the shards finished: which of two copies keeps a track is then
        # the same on every run
        rows = removed + [row for result in sorted(results, key=lambda r: r.index) for row in result.rows]
        self.tally.add(commit_run(self.layout, self.features, batch_id, rows), results=results, unprocessed=unprocessed)
        self.tally.batches += 1
        self.lap("commit_s")
        if lasting is not None:  # the store cannot take more (full, read-only): stop, keeping what was committed
            raise lasting


def _run_shards(
    runner: Any, shards: list[Shard], spec: ExtractionSpec, layout: StoreLayout, *, bar: Any
) -> tuple[list[ShardResult], list[FailedTrack], OSError | None]:
    """Map the shard task over the workers; a shard that fails after its retries leaves its tracks
    unprocessed (selected again next run) instead of stopping the others. The last value is a shard's
    lasting storage error (a full disk, a read-only store), if any: the run stops after this batch."""
    results: list[ShardResult] = []
    unprocessed: list[FailedTrack] = []
    lasting: OSError | None = None
    task = extract_shard.with_options(timeout_seconds=shard_timeout_s(max(len(s.tracks) for s in shards)))
    futures = runner.map(task, {"shard": shards, "spec": unmapped(spec), "layout": unmapped(layout)})
    for shard, outcome in as_they_finish(futures, shards, bar=bar):
        if isinstance(outcome, ShardResult):
            results.append(outcome)
            continue
        unprocessed += [FailedTrack(t.uri, f"shard failed: {outcome}") for t in shard.tracks]
        if isinstance(outcome, OSError) and outcome.errno in LASTING_OS_ERRORS:
            lasting = outcome
    return results, unprocessed, lasting
