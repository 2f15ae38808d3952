"""Scoring tasks: retire superseded rows, score one chunk (on a worker), write one shard's file and the
failures table (in the flow: the only writer; a rewrite of the same rows gives the same file, so they
are retried). The embeddings run the same tasks with ``ScoreSpec.output == "embedding"``."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime

import pandas as pd
from prefect import task
from prefect.cache_policies import NONE

from genreflow.infra.devices import limit_cpu_threads
from genreflow.pipeline.registry import ModelRef
from genreflow.pipeline.scoring.config import OUTPUTS, ScoreSpec
from genreflow.pipeline.scoring.scorers import ModelInfo, Scorer, load_scorer
from genreflow.pipeline.scoring.shard import ChunkScores, ScoreChunk, retire_rows, score_chunk, write_shard
from genreflow.pipeline.scoring.summary import record_failures
from genreflow.pipeline.store import StoreLayout
from genreflow.pipeline.store.scores import ScoresLayout
from genreflow.tasks.retries import transient


@functools.lru_cache(maxsize=2)
def _scorer(layout: StoreLayout, ref: ModelRef, threads: int | None, output: str) -> Scorer:
    """One model load per worker process, version and output, however many chunks it scores."""
    limit_cpu_threads(threads)
    return load_scorer(layout, ref, output=output)


@task(
    name="score-chunk",
    retries=1,
    retry_condition_fn=transient,
    retry_delay_seconds=[5],
    cache_policy=NONE,
    task_run_name="score-{chunk.index}",
)
def score_chunk_task(chunk: ScoreChunk, spec: ScoreSpec, layout: StoreLayout, ref: ModelRef) -> ChunkScores:
    return score_chunk(chunk, spec, layout, _scorer(layout, ref, spec.threads, spec.output))


@task(
    name="write-scores",
    retries=2,
    retry_condition_fn=transient,
    retry_delay_seconds=[2, 10],
    cache_policy=NONE,
    task_run_name="write-{shard}",
)
def write_scores(
    scores: ScoresLayout,
    info: ModelInfo,
    shard: int,
    chunks: Sequence[ChunkScores],
    scored_at: datetime,
    output: str = OUTPUTS[0],
) -> int:
    return write_shard(scores, info, shard, chunks, scored_at=scored_at, output=output)


@task(name="retire-scores", retries=2, retry_condition_fn=transient, retry_delay_seconds=[2, 10], cache_policy=NONE)
def retire_scores(scores: ScoresLayout, ref: ModelRef, retire: dict[int, list[str]]) -> int:
    return retire_rows(scores, ref, retire)


@task(name="record-failures", retries=2, retry_condition_fn=transient, retry_delay_seconds=[2, 10], cache_policy=NONE)
def record_failures_task(
    scores: ScoresLayout,
    ref: ModelRef,
    unscorable: pd.DataFrame,
    attempted: list[dict[str, str]],
    planned: list[ScoreChunk],
) -> pd.DataFrame:
    return record_failures(scores, ref, unscorable, attempted, planned=planned)


def chunk_timeout_s(tracks: int, *, full_track: bool) -> float:
    """How long a chunk may run before it is failed (and retried): the model's start, then a generous
    budget per track (a full-track window costs what a stored patch does, plus decoding)."""
    return 300.0 + (60.0 if full_track else 10.0) * tracks
