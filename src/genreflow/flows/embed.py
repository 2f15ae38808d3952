"""``genreflow embed``: the scoring flow's steps with embeddings as the output, then the index.

Plan (manifest against the embeddings written), retire superseded rows, embed chunks on the workers
and write each shard's file (:func:`genreflow.flows.score.write_outputs`), then rebuild the
nearest-neighbour index, only when a file changed or the index was built from other files.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from prefect import flow

from genreflow.flows.leases import holding_lease
from genreflow.flows.score import write_outputs
from genreflow.infra.devices import cpu_threads_per_worker
from genreflow.infra.settings import Settings
from genreflow.pipeline.embeddings.config import EXACT_BELOW
from genreflow.pipeline.embeddings.index import current_index
from genreflow.pipeline.embeddings.summary import EmbedSummary
from genreflow.pipeline.errors import ParameterError
from genreflow.pipeline.scoring.config import DEFAULT_MODEL, MODES, ScoreSpec
from genreflow.pipeline.scoring.scorers import describe_model, resolve_model
from genreflow.pipeline.scoring.summary import UnscoredTrack
from genreflow.pipeline.store import StoreLayout
from genreflow.pipeline.store.scores import ScoresLayout
from genreflow.tasks.embed import build_index_task
from genreflow.tasks.reports import publish_embed_report


@flow(name="genreflow-embed", validate_parameters=False)
def embed_flow(
    store: str,
    *,
    model: str = DEFAULT_MODEL,
    tracks: str = "new",
    batch_size: int = ScoreSpec.batch_size,
    chunk_size: int | None = None,
    exact_below: int = EXACT_BELOW,
    threads: int | None = None,
    wait_s: float = 0.0,
    storage_options: Mapping[str, Any] | None = None,
    settings: Settings | Mapping[str, Any] | None = None,
    show_progress: bool = True,
) -> EmbedSummary:
    """Write one L2-normalised embedding per track of the store with ``model`` (``NAME[@VERSION]``:
    the layer its head reads; a zero-shot tagger's penultimate layer) to
    ``<store>/embeddings/model=<name>/version=<v>/``, and keep the index beside them current.

    ``tracks``: ``new`` (not embedded by this version yet, or changed since) or ``all``. Tracks gone
    from the catalogue lose their rows. Chunks run on the Dask workers ``settings`` describe, started
    only when there is something to embed; ``None``: in this process's threads. Everything is written
    under the store's lease (waiting up to ``wait_s`` for another run's).
    """
    started = time.perf_counter()
    settings = Settings.coerce(settings)  # a deployment's parameters arrive as JSON
    if tracks not in MODES:
        raise ParameterError(f"tracks must be one of {MODES}, got {tracks!r}")
    if exact_below < 0:
        raise ParameterError(f"exact-below must be at least 0, got {exact_below}")
    if threads is None and settings is not None and not settings.dask_address and settings.cluster == "local":
        threads = cpu_threads_per_worker(settings.workers)
    spec = ScoreSpec(batch_size=batch_size, threads=threads, output="embedding")
    layout = StoreLayout(store, dict(storage_options or {}))
    ref = resolve_model(layout, model)
    info = describe_model(layout, ref)
    root = ScoresLayout(layout.embeddings, dict(storage_options or {}))
    with holding_lease(layout, f"embed {ref}", wait_s=wait_s) as lease:
        run = write_outputs(layout, root, info, spec, tracks=tracks, chunk_size=chunk_size, lease=lease,
                            settings=settings, show_progress=show_progress)  # fmt: skip
        index = None if run.changed else current_index(root, ref)
        if index is None:
            lease.ensure_held()
            index = build_index_task(root, ref, exact_below, threads)
    dims = {r.outputs.shape[1] for r in run.results if len(r.track_ids)}
    summary = EmbedSummary(
        model=ref.name,
        version=ref.version,
        store=store,
        embeddings=root.version_dir(ref.name, ref.version),
        selected=run.plan.n_tracks,
        embedded=sum(len(r.track_ids) for r in run.results),
        failed=len(run.attempted),
        unscorable=len(run.plan.failures),
        failures=tuple(UnscoredTrack(**record) for record in run.failures.to_dict("records")),
        retired=run.retired,
        dim=dims.pop() if dims else index.dim,
        changed=run.changed,
        index=index,
        n_patches=sum(r.n_patches for r in run.results),
        tasks=len(run.plan.chunks),
        plan_s=run.plan_s,
        compute_s=sum(r.seconds for r in run.results),
        wall_s=time.perf_counter() - started,
    )
    publish_embed_report(summary)
    return summary
