"""``genreflow train``: a Prefect flow around the training task, and its report artifact."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prefect import flow, unmapped
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from genreflow.pipeline.store import StoreLayout
from genreflow.pipeline.training.fit import TrainConfig
from genreflow.tasks.train import cross_validation, score_config, train_model


@flow(name="genreflow-train", log_prints=False)
def train_flow(
    store: str,
    backbone: str,
    *,
    model_name: str | None = None,
    config: TrainConfig | None = None,
    grid: list[TrainConfig] | None = None,
    cv_folds: int = 0,
    device: str = "auto",
    home: Path,
    storage_options: Mapping[str, Any] | None = None,
    gpu_worker: bool = False,
) -> dict[str, Any]:
    """Train ``backbone`` on the store's labelled tracks and register the result.

    ``grid`` configs are fitted as parallel tasks and scored on validation; the best one is trained
    for the registered model. ``cv_folds`` adds a K-fold cross-validation estimate to its card. On a
    Dask cluster whose workers advertise ``GPU`` resources, training tasks are annotated to need one
    (``gpu_worker``); elsewhere they run where the flow runs, on its GPU if any, else the CPU.
    """
    import dask

    layout = StoreLayout(store, dict(storage_options or {}))
    annotation = dask.annotate(resources={"GPU": 1}) if gpu_worker else contextlib.nullcontext()
    config = config or TrainConfig()
    selection: dict[str, Any] = {}
    with annotation:
        if grid and len(grid) > 1:
            futures = score_config.map(unmapped(layout), unmapped(backbone), grid, unmapped(device))
            scores = [future.result() for future in futures]
            best = max(range(len(grid)), key=lambda i: (scores[i]["accuracy"], scores[i]["macro_f1"]))
            config = grid[best]
            selection["grid"] = [{**_grid_point(c), **s} for c, s in zip(grid, scores, strict=True)]
            selection["chosen"] = _grid_point(config)
        if cv_folds:
            cv = cross_validation.submit(layout, backbone, config, device, cv_folds)
            selection["cross_validation"] = cv.result()
        future = train_model.submit(layout, backbone, model_name, config, device, home, selection)
    result = future.result()
    result["path"] = layout.model_dir(result["name"], result["version"])
    _publish(result)
    return result


def _grid_point(config: TrainConfig) -> dict[str, Any]:
    return {"learning_rate": config.learning_rate, "batch_size": config.batch_size, "epochs": config.epochs}


def _publish(result: dict[str, Any]) -> None:
    metrics = result["card"]["metrics"]
    key = f"train-{result['name']}-{result['version']}".lower().replace("_", "-").replace(".", "-")
    create_table_artifact(
        key=f"{key}-classes",
        table=[{"class": name, **values} for name, values in metrics["per_class"].items()],
        description=f"Per-class test figures of {result['name']}@{result['version']}",
    )
    create_markdown_artifact(
        key=f"{key}-summary",
        markdown="\n".join(
            [
                f"# {result['name']}@{result['version']} ({result['card']['architecture']}, {result['device']})",
                f"- test accuracy {metrics['accuracy']:.3f}, top-3 {metrics['top3_accuracy']:.3f}, "
                f"macro-F1 {metrics['macro_f1']:.3f} on {metrics['n_tracks']} tracks",
                f"- report: `{result['path']}/report/index.html`",
            ]
        ),
    )
