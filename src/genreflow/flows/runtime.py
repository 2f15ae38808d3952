"""Running flows from the CLI: quiet environment, a Prefect API, a Dask task runner, then the flow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genreflow.infra.logs import configure_environment
from genreflow.infra.prefect_api import ensure_prefect_api
from genreflow.infra.settings import Settings


def prepare(settings: Settings) -> None:
    """Environment first (workers inherit it), then the API, before Prefect is imported."""
    configure_environment(verbose=settings.verbose)
    ensure_prefect_api(settings.home)


def run_ingest(settings: Settings, *, source: str, store: str | None = None, **params: Any) -> dict[str, Any]:
    """Run the ingest flow on the runner ``settings`` describe; returns the flow's summary."""
    prepare(settings)
    from genreflow.flows.ingest import ingest_flow

    flow = _on_dask(settings, ingest_flow)
    return flow(source, store or settings.store, storage_options=settings.storage_options, **params)


def run_score(settings: Settings, *, store: str | None = None, **params: Any) -> dict[str, Any]:
    """Run the scoring flow on the runner ``settings`` describe; returns the flow's summary."""
    prepare(settings)
    from genreflow.flows.score import score_flow

    if not settings.dask_address:  # local workers share this host's cores
        from genreflow.infra.devices import cpu_threads_per_worker

        params.setdefault("threads", cpu_threads_per_worker(settings.workers))
    flow = _on_dask(settings, score_flow)
    return flow(store or settings.store, storage_options=settings.storage_options, **params)


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
    backbone: str,
    model_name: str | None,
    config: Any,
    device: str,
    grid: list[Any] | None = None,
    cv_folds: int = 0,
) -> dict[str, Any]:
    """Run the training flow: in this process (its GPU if any), or on a Dask cluster's GPU worker."""
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
        settings.store,
        backbone,
        model_name=model_name,
        config=config,
        grid=grid,
        cv_folds=cv_folds,
        device=device,
        home=settings.home,
        storage_options=settings.storage_options,
        gpu_worker=gpu_worker,
    )


def run_demo(settings: Settings, *, directory: Path) -> int:
    """Make the demo catalogue (once) and run every stage that exists on it; prints where things are."""
    from genreflow.flows.cli import EXIT_OK, describe_ingest
    from genreflow.pipeline.demo import make_demo_catalogue

    catalogue = directory / "catalogue"
    if not (catalogue / "genres").exists():
        paths = make_demo_catalogue(catalogue)
        print(f"demo catalogue: {len(paths)} files under {catalogue / 'genres'}")
    store = settings.store or str(directory / "store")
    summary = run_ingest(settings, source=str(catalogue), store=store, feature_sets=["mel128", "musicnn96", "wavelet"])
    print(describe_ingest(summary))
    print(f"feature store: {store}/features.zarr   manifest: {store}/manifest/")
    print("the broken demo files above are expected to fail: they show how bad input is reported")

    import dataclasses

    from genreflow.flows.cli import describe_training
    from genreflow.pipeline.models.architectures import DEFAULT_ARCHITECTURE
    from genreflow.pipeline.registry import promote
    from genreflow.pipeline.store import StoreLayout
    from genreflow.pipeline.training.fit import TrainConfig

    trained = run_train(
        dataclasses.replace(settings, store=store),
        backbone=DEFAULT_ARCHITECTURE,
        model_name="genre",
        config=TrainConfig(),
        device="auto",
    )
    print(describe_training(trained))
    print(f"production model: {promote(StoreLayout(store, settings.storage_options), 'genre@' + trained['version'])}")

    from genreflow.flows.cli import describe_scoring

    scored = run_score(dataclasses.replace(settings, store=store), model="genre")
    print(describe_scoring(scored))
    print(example_rows(scored["scores"]))
    return EXIT_OK


def example_rows(folder: str, n: int = 3) -> str:
    """The first ``n`` rows of a model version's scores, as a person would look at them in pandas."""
    import pandas as pd

    frame = pd.read_parquet(folder).head(n)
    columns = ["track_id", "label_top", "prob_top", "top3", "n_windows"]
    with pd.option_context("display.width", 160, "display.max_colwidth", 60):
        return f"three example rows of {folder}:\n{frame[columns].to_string(index=False)}"
