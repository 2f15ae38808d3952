"""``genreflow train``: a Prefect flow around the training task, and its report artifact."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prefect import flow, unmapped

from genreflow.pipeline.store import StoreLayout
from genreflow.pipeline.training.config import TrainConfig
from genreflow.pipeline.training.probe import ProbeFeatures
from genreflow.pipeline.training.run import TrainResult
from genreflow.pipeline.training.select import choose_config
from genreflow.tasks.reports import publish_train_report
from genreflow.tasks.train import cross_validation, score_config, train_model


@flow(name="genreflow-train", log_prints=False)
def train_flow(
    store: str,
    backbone: str,
    *,
    model_name: str,
    config: TrainConfig | None = None,
    grid: list[TrainConfig] | None = None,
    cv_folds: int = 0,
    device: str = "auto",
    home: Path,
    storage_options: Mapping[str, Any] | None = None,
    gpu_worker: bool = False,
    wait_s: float = 0.0,
) -> TrainResult:
    """Train ``backbone`` on the store's labelled tracks and register the result.

    ``grid`` configs are fitted as parallel tasks and scored on validation; the best one is trained
    for the registered model. ``cv_folds`` adds a K-fold cross-validation estimate to its card. On a
    Dask cluster whose workers advertise ``GPU`` resources, training tasks are annotated to need one
    (``gpu_worker``); elsewhere they run where the flow runs, on its GPU if any, else the CPU.
    Linear probes (and ``auto``'s candidates) compute their tagger features once for the whole run:
    the cross-validation and the registered fit share one in-memory cache where they share a process.
    """
    import dask

    layout = StoreLayout(store, dict(storage_options or {}))
    annotation = dask.annotate(resources={"GPU": 1}) if gpu_worker else contextlib.nullcontext()
    config = config or TrainConfig()
    selection: dict[str, Any] = {}
    features = ProbeFeatures(batch_size=config.batch_size)
    with annotation:
        if grid and len(grid) > 1:
            futures = score_config.map(unmapped(layout), unmapped(backbone), grid, unmapped(device))
            config, selection = choose_config(grid, [future.result() for future in futures])
        if cv_folds:
            cv = cross_validation.submit(layout, backbone, config, device, cv_folds, features)
            selection["cross_validation"] = cv.result()
        future = train_model.submit(layout, backbone, model_name, config, device, home, selection, wait_s, features)
    result = future.result()
    publish_train_report(result)
    return result
