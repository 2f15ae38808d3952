"""Training tasks: a grid point scored on validation, a cross-validation, and the registered model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NONE

from genreflow.infra.devices import dask_worker, select_device
from genreflow.pipeline.store import StoreLayout
from genreflow.pipeline.training.config import TrainConfig
from genreflow.pipeline.training.probe import ProbeFeatures
from genreflow.pipeline.training.run import TrainResult, state_dir, train_and_register
from genreflow.pipeline.training.select import cross_validate, validation_score


# No retries: a crashed run resumes from its own epoch checkpoints when the same command runs again.
# The `gpu` tag lets an operator cap concurrent training with a Prefect tag concurrency limit.
@task(name="train-model", cache_policy=NONE, tags=["gpu"], task_run_name="train-{arch_name}")
def train_model(
    layout: StoreLayout,
    arch_name: str,
    model_name: str,
    config: TrainConfig,
    device: str,
    home: Path,
    selection: dict[str, Any] | None = None,
    wait_s: float = 0.0,
    features: ProbeFeatures | None = None,
) -> TrainResult:
    used = select_device(device)
    state = state_dir(home, layout, arch_name, model_name, config)
    return train_and_register(
        layout, arch_name, model_name=model_name, config=config, state=state, device=used, selection=selection,
        wait_s=wait_s, worker=dask_worker(), features=features,
    )  # fmt: skip


@task(name="score-config", cache_policy=NONE, task_run_name="grid-{arch_name}")
def score_config(layout: StoreLayout, arch_name: str, config: TrainConfig, device: str) -> dict[str, Any]:
    """One grid point, judged on validation tracks only."""
    select_device(device)
    return validation_score(layout, arch_name, config)


@task(name="cross-validate", cache_policy=NONE, task_run_name="cv-{arch_name}")
def cross_validation(
    layout: StoreLayout,
    arch_name: str,
    config: TrainConfig,
    device: str,
    folds: int,
    features: ProbeFeatures | None = None,
) -> dict[str, Any]:
    select_device(device)
    return cross_validate(layout, arch_name, config, folds=folds, features=features)
