"""The training task: one architecture, trained, evaluated once on test, registered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NONE

from genreflow.infra.devices import select_device
from genreflow.pipeline.store import StoreLayout
from genreflow.pipeline.training.fit import TrainConfig
from genreflow.pipeline.training.run import state_dir, train_and_register


# No retries: a crashed run resumes from its own epoch checkpoints when the same command runs again.
@task(name="train-model", cache_policy=NONE, tags=["gpu"], task_run_name="train-{arch_name}")
def train_model(
    layout: StoreLayout, arch_name: str, model_name: str | None, config: TrainConfig, device: str, home: Path
) -> dict[str, Any]:
    used = select_device(device)
    state = state_dir(home, layout, arch_name, model_name or arch_name, config)
    ref, card = train_and_register(layout, arch_name, model_name=model_name, config=config, state=state, device=used)
    return {"name": ref.name, "version": ref.version, "device": used, "card": card}
