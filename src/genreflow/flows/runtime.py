"""Running flows from the CLI: checks that fail fast, a quiet environment, a Prefect API, a Dask task
runner, then the flow."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from genreflow.infra.dask_cluster import start_local_workers_early
from genreflow.infra.devices import DEVICES
from genreflow.infra.logs import configure_environment
from genreflow.infra.prefect_api import ensure_prefect_api
from genreflow.infra.settings import Settings
from genreflow.pipeline.errors import ParameterError
from genreflow.pipeline.store import StoreLayout, require_store_root, require_tracks
from genreflow.pipeline.training.config import DEFAULT_ARCHITECTURE, DEFAULT_MODEL_NAME, TrainConfig
from genreflow.pipeline.uri import is_remote, require_writable_folder

if TYPE_CHECKING:  # the flows' result types; importing them here would load every flow's dependencies
    from genreflow.pipeline.embeddings.summary import EmbedSummary
    from genreflow.pipeline.ingest import IngestPreview, IngestSummary
    from genreflow.pipeline.nightly import NightlySummary
    from genreflow.pipeline.scoring.summary import ScoreSummary
    from genreflow.pipeline.training.run import TrainResult


def prepare(settings: Settings) -> None:
    """Environment first (workers inherit it), then the API, before Prefect is imported."""
    configure_environment(verbose=settings.verbose)
    ensure_prefect_api(settings.home)


def run_ingest(
    settings: Settings, *, source: str, store: str | None = None, backfill: bool = False, **params: Any
) -> IngestSummary:
    """Run the ingest flow (named ``backfill`` with ``backfill``) on the runner ``settings`` describe;
    returns the flow's summary.

    A missing source or a store root that is a file is reported before any server or worker starts.
    """
    from genreflow.pipeline.datasets import require_source

    store = store or _store(settings)
    require_source(source, storage_options=settings.storage_options)
    require_store_root(StoreLayout(store, settings.storage_options))
    preview = None
    if not is_remote(source):  # listing twice is free on a disk, not on a bucket of millions
        preview, unchanged = _preview(settings, source=source, store=store, params=params)
        if unchanged is not None:
            return unchanged
    prepare(settings)
    if preview is None or preview.to_decode is None or not settings.decodes_in_process(preview.to_decode):
        start_local_workers_early(settings)  # they import while this process imports Prefect and plans
    from genreflow.flows.ingest import backfill_flow, ingest_flow

    _quiet(settings)
    chosen = backfill_flow if backfill else ingest_flow
    return chosen(source, store, storage_options=settings.storage_options, settings=settings, **params)


def _preview(
    settings: Settings, *, source: str, store: str, params: dict[str, Any]
) -> tuple[IngestPreview, IngestSummary | None]:
    """What the run would do, found without Prefect, workers or the lease, and the summary of a run
    with nothing to do (a second or so instead of a flow run's five), or None when the flow must run."""
    import time

    from genreflow.pipeline import ingest_config as defaults
    from genreflow.pipeline.datasets import scan_catalogue, source_uri
    from genreflow.pipeline.features import parse_feature_sets
    from genreflow.pipeline.ingest import RunTally, detected_dataset, new_run_id, preview_ingest

    started = time.perf_counter()
    dataset = params.get("dataset", defaults.DEFAULT_DATASET)
    sets = parse_feature_sets(list(params.get("feature_sets", defaults.DEFAULT_FEATURE_SETS)))
    catalogue = scan_catalogue(
        source, dataset=dataset, fma_subset=params.get("fma_subset", defaults.DEFAULT_FMA_SUBSET)
    )
    scanned = time.perf_counter()
    preview = preview_ingest(
        StoreLayout(store, settings.storage_options),
        catalogue,
        source=source_uri(source),
        dataset=dataset,
        feature_sets=sets,
        window_s=params.get("window_s"),
        min_duration_s=params.get("min_duration_s", defaults.DEFAULT_MIN_DURATION_S),
        channel_views=params.get("channel_views", defaults.DEFAULT_CHANNEL_VIEWS),
        retry_failed=params.get("retry_failed", False),
    )
    if not preview.up_to_date:
        return preview, None
    done = time.perf_counter()
    return preview, RunTally().summary(
        run_id=new_run_id(),
        source=source,
        store=store,
        dataset=detected_dataset(catalogue, dataset),
        listed=len(catalogue),
        selected=0,
        feature_sets=tuple(fs.name for fs in sets),
        wall_s=done - started,
        phases={"scan_s": scanned - started, "plan_s": done - scanned},
    )


def run_score(settings: Settings, *, store: str | None = None, **params: Any) -> ScoreSummary:
    """Run the scoring flow on the runner ``settings`` describe; returns the flow's summary."""
    store = store or _store(settings)
    require_store_root(StoreLayout(store, settings.storage_options))
    require_tracks(StoreLayout(store, settings.storage_options))
    if params.get("out"):  # checked before a run computes every track only to fail writing the first
        require_writable_folder(params["out"], what="--out")
    prepare(settings)
    from genreflow.flows.score import score_flow

    _quiet(settings)
    return score_flow(store, storage_options=settings.storage_options, settings=settings, **params)


def run_embed(settings: Settings, *, store: str | None = None, **params: Any) -> EmbedSummary:
    """Run the embedding flow on the runner ``settings`` describe; returns the flow's summary."""
    store = store or _store(settings)
    require_store_root(StoreLayout(store, settings.storage_options))
    require_tracks(StoreLayout(store, settings.storage_options))
    prepare(settings)
    from genreflow.flows.embed import embed_flow

    _quiet(settings)
    return embed_flow(store, storage_options=settings.storage_options, settings=settings, **params)


def run_nightly(
    settings: Settings, *, sources: Sequence[str], store: str | None = None, **params: Any
) -> NightlySummary:
    """Run the nightly flow: every source ingested, then the models score what is new."""
    from genreflow.pipeline.datasets import require_source

    store = store or _store(settings)
    for source in sources:
        require_source(source, storage_options=settings.storage_options)
    require_store_root(StoreLayout(store, settings.storage_options))
    prepare(settings)
    from genreflow.flows.nightly import nightly_flow

    _quiet(settings)
    return nightly_flow(list(sources), store, storage_options=settings.storage_options, settings=settings, **params)


def _quiet(settings: Settings) -> None:
    """Quiet loggers again: importing Prefect configures its logging afresh."""
    from genreflow.infra.logs import quiet_loggers

    if not settings.verbose:
        quiet_loggers()


def run_train(
    settings: Settings,
    *,
    backbone: str = DEFAULT_ARCHITECTURE,
    model_name: str = DEFAULT_MODEL_NAME,
    config: TrainConfig | None = None,
    device: str = DEVICES[0],
    grid: list[TrainConfig] | None = None,
    cv_folds: int = 0,
    wait_s: float = 0.0,
) -> TrainResult:
    """Run the training flow: in this process (its GPU if any), or on a Dask cluster's GPU worker."""
    from genreflow.pipeline.models.architectures import backbone_candidates

    store = _store(settings)
    backbone_candidates(backbone)  # an unknown name is refused before anything starts
    if settings.cluster != "local":
        raise ParameterError(
            f"train runs in this process (its GPU if any) or on --dask-address's GPU worker, not on "
            f"--cluster {settings.cluster}: ingest and score there, train where the GPU is"
        )
    require_store_root(StoreLayout(store, settings.storage_options))
    require_tracks(StoreLayout(store, settings.storage_options))
    prepare(settings)
    from genreflow.flows.train import train_flow

    _quiet(settings)
    flow = train_flow
    gpu_worker = False
    if settings.dask_address:
        from distributed import Client

        from genreflow.infra.clusters import dask_security
        from genreflow.infra.dask_cluster import task_runner
        from genreflow.infra.devices import gpu_resources

        with Client(settings.dask_address, security=dask_security(settings)) as client:
            gpu_worker = device != "cpu" and gpu_resources(client)
        flow = train_flow.with_options(task_runner=task_runner(settings))
    return flow(
        store,
        backbone,
        model_name=model_name,
        config=config or TrainConfig(),
        grid=grid,
        cv_folds=cv_folds,
        device=device,
        home=settings.home,
        storage_options=settings.storage_options,
        gpu_worker=gpu_worker,
        wait_s=wait_s,
    )


def _store(settings: Settings) -> str:
    if not settings.store:
        raise ParameterError("--store (or GENREFLOW_STORE) is required")
    return settings.store
