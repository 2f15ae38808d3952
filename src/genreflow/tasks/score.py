"""Scoring tasks: retire superseded rows, and score one shard (its file rewritten whole, so a retry
or a re-run gives the same file)."""

from __future__ import annotations

import functools

from prefect import task
from prefect.cache_policies import NONE

from genreflow.pipeline.registry import ModelRef
from genreflow.pipeline.scoring.scorers import Scorer, describe_model, load_scorer
from genreflow.pipeline.scoring.shard import ScoreShard, ScoreSpec, ShardOutcome, score_shard
from genreflow.pipeline.store import StoreLayout
from genreflow.pipeline.store.scores import rewrite_part, scores_schema


@functools.lru_cache(maxsize=2)
def _scorer(layout: StoreLayout, ref: ModelRef) -> Scorer:
    """One model load per worker process and version, however many shards it scores."""
    return load_scorer(layout, ref)


@task(
    name="score-shard", retries=1, retry_delay_seconds=[5], cache_policy=NONE, task_run_name="score-shard-{shard.index}"
)
def score_shard_task(shard: ScoreShard, spec: ScoreSpec, layout: StoreLayout, ref: ModelRef) -> ShardOutcome:
    return score_shard(shard, spec, layout, _scorer(layout, ref))


@task(name="retire-scores", retries=2, retry_delay_seconds=[2, 10], cache_policy=NONE)
def retire_scores(retire: dict[int, list[str]], spec: ScoreSpec, layout: StoreLayout, ref: ModelRef) -> int:
    """Drop the rows of tracks that moved shard or no longer score, before any shard is rewritten."""
    info = describe_model(layout, ref)
    schema = scores_schema(ref.name, ref.version, info.labels)
    for shard, track_ids in sorted(retire.items()):
        rewrite_part(spec.scores, ref.name, ref.version, shard, schema=schema, drop=track_ids)
    return sum(len(ids) for ids in retire.values())
