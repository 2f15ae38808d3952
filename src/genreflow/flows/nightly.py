"""``genreflow nightly``: ingest what is new under each source, then score exactly the new and changed
tracks with the production model (and any other models listed), then bring that first model's
embeddings and their index up to date, in one flow run with one summary."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from prefect import flow

from genreflow.flows.embed import embed_flow
from genreflow.flows.ingest import ingest_flow
from genreflow.flows.mapping import shared_workers
from genreflow.flows.score import score_flow
from genreflow.infra.settings import Settings
from genreflow.pipeline.ingest_config import DEFAULT_FEATURE_SETS
from genreflow.pipeline.nightly import NightlySummary, summarise_night
from genreflow.pipeline.scoring.config import DEFAULT_NIGHTLY_MODELS, DEFAULT_THRESHOLD
from genreflow.pipeline.scoring.scorers import describe_model, resolve_model
from genreflow.pipeline.store import StoreLayout
from genreflow.tasks.reports import publish_nightly_report


@flow(name="genreflow-nightly", validate_parameters=False)
def nightly_flow(
    sources: Sequence[str],
    store: str,
    *,
    models: Sequence[str] = DEFAULT_NIGHTLY_MODELS,
    threshold: float = DEFAULT_THRESHOLD,
    allow_empty_source: bool = False,
    embed: bool = True,
    wait_s: float = 0.0,
    storage_options: Mapping[str, Any] | None = None,
    settings: Settings | Mapping[str, Any] | None = None,
    show_progress: bool = True,
) -> NightlySummary:
    """Ingest each source (new, changed and vanished files), then score the tracks each model has not
    scored yet, or that changed since; with ``embed``, embed them with the first model too (vanished
    tracks lose their embeddings) and rebuild the index beside them, only when something changed.

    The models are resolved first (a missing or unpromoted model stops the night before any work),
    and ingest stores the default feature sets plus whatever they read. Workers start with the first
    step that has work (and serve the later steps) and load a model only when there are tracks to
    score, so a night with nothing new costs seconds.
    """
    started = time.perf_counter()
    settings = Settings.coerce(settings)  # a deployment's parameters arrive as JSON
    layout = StoreLayout(store, dict(storage_options or {}))
    infos = [describe_model(layout, resolve_model(layout, spec)) for spec in models]
    feature_sets = sorted({*DEFAULT_FEATURE_SETS, *(name for info in infos for name in info.inputs)})
    phases: dict[str, float] = {}
    # The steps run inside this flow run (their tasks and artifacts are its own): as subflows, each
    # cost about a second of flow-run bookkeeping, more than a whole night with nothing new. They
    # share one set of workers, started by the first step with work.
    with shared_workers():
        ingests = [
            ingest_flow.fn(source, store, feature_sets=feature_sets, allow_empty_source=allow_empty_source,
                           wait_s=wait_s, storage_options=storage_options, settings=settings,
                           show_progress=show_progress)
            for source in sources
        ]  # fmt: skip
        phases["ingest_s"] = time.perf_counter() - started
        scorings = [
            score_flow.fn(store, model=str(info.ref), tracks="new", threshold=threshold, wait_s=wait_s,
                          storage_options=storage_options, settings=settings, show_progress=show_progress)
            for info in infos
        ]  # fmt: skip
        phases["score_s"] = time.perf_counter() - started - sum(phases.values())
        embedding = (
            embed_flow.fn(store, model=str(infos[0].ref), tracks="new", wait_s=wait_s,
                          storage_options=storage_options, settings=settings, show_progress=show_progress)
            if embed and infos
            else None
        )  # fmt: skip
        phases["embed_s"] = time.perf_counter() - started - sum(phases.values())
    summary = summarise_night(
        store, ingests, scorings, embedding, threshold=threshold, phases=phases, wall_s=time.perf_counter() - started
    )
    publish_nightly_report(summary)
    return summary
