"""The embeddings' own task: rebuild a version's nearest-neighbour index from its files (in the flow,
under the store's lease; a rebuild from the same files gives the same index, so it is retried).
The embeddings themselves are written by the scoring tasks (:mod:`genreflow.tasks.score`)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from genreflow.pipeline.embeddings.index import IndexBuild, rebuild_index
from genreflow.pipeline.registry import ModelRef
from genreflow.pipeline.store.scores import ScoresLayout
from genreflow.tasks.retries import transient


@task(name="build-index", retries=2, retry_condition_fn=transient, retry_delay_seconds=[2, 10], cache_policy=NONE)
def build_index_task(root: ScoresLayout, ref: ModelRef, exact_below: int, threads: int | None) -> IndexBuild:
    return rebuild_index(root, ref, exact_below=exact_below, threads=threads)
