"""Running flows from the CLI: checks that fail fast, a quiet environment, a Prefect API, a Dask task
runner, then the flow."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from genreflow.infra.devices import DEVICES
from genreflow.infra.logs import configure_environment
from genreflow.infra.prefect_api import ensure_prefect_api
from genreflow.infra.settings import Settings
from genreflow.pipeline.store import StoreLayout, require_store_root, require_tracks
from genreflow.pipeline.training.config import DEFAULT_ARCHITECTURE, TrainConfig

if TYPE_CHECKING:  # the flows' result types; importing them here would load every flow's dependencies
    from genreflow.pipeline.ingest import IngestSummary
    from genreflow.pipeline.scoring.summary import ScoreSummary
    from genreflow.pipeline.training.run import TrainResult


def prepare(settings: Settings) -> None:
    """Environment first (workers inherit it), then the API, before Prefect is imported."""
    configure_environment(verbose=settings.verbose)
    ensure_prefect_api(settings.home)


def run_ingest(settings: Settings, *, source: str, store: str | None = None, **params: Any) -> IngestSummary:
    """Run the ingest flow on the runner ``settings`` describe; returns the flow's summary.

    A missing source or a store root that is a file is reported before any server or worker starts.
    """
    from genreflow.pipeline.datasets import require_source

    store = store or _store(settings)
    require_source(source, storage_options=settings.storage_options)
    require_store_root(StoreLayout(store, settings.storage_options))
    prepare(settings)
    from genreflow.flows.ingest import ingest_flow

    flow = _on_dask(settings, ingest_flow)
    return flow(source, store, storage_options=settings.storage_options, **params)


def run_score(settings: Settings, *, store: str | None = None, **params: Any) -> ScoreSummary:
    """Run the scoring flow on the runner ``settings`` describe; returns the flow's summary."""
    store = store or _store(settings)
    require_tracks(StoreLayout(store, settings.storage_options))
    prepare(settings)
    from genreflow.flows.score import score_flow

    if not settings.dask_address:  # local workers share this host's cores
        from genreflow.infra.devices import cpu_threads_per_worker

        params.setdefault("threads", cpu_threads_per_worker(settings.workers))
    flow = _on_dask(settings, score_flow)
    return flow(store, storage_options=settings.storage_options, **params)


def _on_dask(settings: Settings, flow: Any) -> Any:
    """``flow`` mapping its tasks onto the local or configured Dask cluster, with quiet loggers."""
    from genreflow.infra.dask_cluster import task_runner
    from genreflow.infra.logs import quiet_loggers

    if not settings.verbose:
        quiet_loggers()
    return flow.with_options(task_runner=task_runner(settings))


def run_train(
    settings: Settings,
    *,
    backbone: str = DEFAULT_ARCHITECTURE,
    model_name: str | None = None,
    config: TrainConfig | None = None,
    device: str = DEVICES[0],
    grid: list[TrainConfig] | None = None,
    cv_folds: int = 0,
) -> TrainResult:
    """Run the training flow: in this process (its GPU if any), or on a Dask cluster's GPU worker."""
    from genreflow.pipeline.models.architectures import get_architecture

    store = _store(settings)
    get_architecture(backbone)  # an unknown name is refused before anything starts
    require_tracks(StoreLayout(store, settings.storage_options))
    prepare(settings)
    from genreflow.flows.train import train_flow
    from genreflow.infra.logs import quiet_loggers

    if not settings.verbose:
        quiet_loggers()
    flow = train_flow
    gpu_worker = False
    if settings.dask_address:
        from distributed import Client

        from genreflow.infra.dask_cluster import task_runner
        from genreflow.infra.devices import gpu_resources

        with Client(settings.dask_address) as client:
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
    )


def _store(settings: Settings) -> str:
    from genreflow.pipeline.errors import ParameterError

    if not settings.store:
        raise ParameterError("--store (or GENREFLOW_STORE) is required")
    return settings.store
