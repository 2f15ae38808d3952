"""Ingest tasks: listing a source (remote I/O, retried) and extracting one shard (retried: its
writes go only to its own rows, so a retry overwrites the same chunks)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NONE

from genreflow.pipeline.datasets import scan_catalogue
from genreflow.pipeline.extract import ExtractionSpec, Shard, ShardResult, run_shard
from genreflow.pipeline.store import StoreLayout
from genreflow.tasks.retries import transient


@task(name="scan-source", retries=2, retry_condition_fn=transient, retry_delay_seconds=[2, 10], cache_policy=NONE)
def scan_source(
    source: str, *, dataset: str, fma_subset: str, storage_options: Mapping[str, Any] | None
) -> pd.DataFrame:
    return scan_catalogue(source, dataset=dataset, fma_subset=fma_subset, storage_options=storage_options)


# No tags: Prefect asks its API for tag concurrency slots before every tagged task run, which cost
# up to 2.5 s per shard here (measured with py-spy); Dask's worker count already bounds the fan-out.
# No result cache: crash recovery comes from the shard receipts in the store (pipeline.ingest), which
# survive the flow process; a cached result would point at rows of an earlier allocation.
@task(
    name="extract-shard",
    retries=2,
    retry_condition_fn=transient,
    retry_delay_seconds=[5, 30],
    cache_policy=NONE,
    task_run_name="extract-shard-{shard.index}",
)
def extract_shard(shard: Shard, spec: ExtractionSpec, layout: StoreLayout) -> ShardResult:
    return run_shard(shard, spec, layout)


def shard_timeout_s(tracks: int) -> float:
    """How long a shard of ``tracks`` may run before it is failed (and retried): a hung decode must not
    hold the night. Generous: a track costs well under a second here, a window of an hour-long MP3 on
    S3 a few seconds."""
    return 120.0 + 10.0 * tracks
