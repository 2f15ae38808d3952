"""``genreflow score``: plan → retire superseded rows → map chunk tasks, write each file → failures → report."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from prefect import flow, unmapped
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from genreflow.flows.mapping import as_they_finish
from genreflow.pipeline.registry import ModelRef
from genreflow.pipeline.scoring.plan import MODES, plan_scoring, read_track_ids
from genreflow.pipeline.scoring.scorers import ModelInfo, describe_model, resolve_model
from genreflow.pipeline.scoring.shard import ChunkScores, ScoreChunk, ScoreSpec
from genreflow.pipeline.store import StoreLayout, read_manifest
from genreflow.pipeline.store.scores import ScoresLayout, read_failures, scored_tracks, write_failures
from genreflow.tasks.score import retire_scores, score_chunk_task, write_scores

DEFAULT_MODEL = "genre"


@flow(name="genreflow-score", validate_parameters=False)
def score_flow(
    store: str,
    *,
    model: str = DEFAULT_MODEL,
    tracks: str | Sequence[str] = "new",
    full_track: bool = False,
    out: str | None = None,
    hop_s: float | None = None,
    batch_size: int = 64,
    chunk_size: int | None = None,
    threshold: float = 0.5,
    threads: int | None = None,
    storage_options: Mapping[str, Any] | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Score ``tracks`` of the store with ``model`` (``NAME[@VERSION]``, a registered model's
    production version by default, or a zero-shot tagger) and write its Parquet files.

    ``tracks`` is ``new``, ``all``, the URI of a file of track ids, or a list of ids. ``threads``
    caps the model's CPU threads in each worker process (local workers split the cores).
    Returns a summary: counts, top-label distribution, low-confidence count, failures, files, timings.
    """
    started = time.perf_counter()
    layout = StoreLayout(store, dict(storage_options or {}))
    ref = resolve_model(layout, model)
    info = describe_model(layout, ref)
    scores = ScoresLayout(out or layout.scores, dict(storage_options or {}))
    spec = ScoreSpec(full_track=full_track, hop_s=hop_s, batch_size=batch_size, threads=threads)
    if isinstance(tracks, str) and tracks not in MODES:
        tracks = read_track_ids(tracks, storage_options=storage_options)
    plan = plan_scoring(
        read_manifest(layout),
        scored_tracks(scores, ref.name, ref.version),
        feature_sets=info.inputs,
        tracks=tracks,
        chunk_size=chunk_size,
    )
    planned_s = time.perf_counter() - started
    retired = retire_scores(scores, info, plan.retire) if plan.retire else 0
    results, crashed = _run_chunks(plan.chunks, spec, layout, scores, info, show_progress=show_progress)

    attempted = [f for r in results for f in r.failures] + crashed
    failures = _current_failures(scores, ref, plan.failures, attempted, planned=plan.chunks)
    probabilities = np.concatenate([r.probabilities for r in results]) if results else np.zeros((0, len(info.labels)))
    top_labels = Counter(info.labels[i] for i in probabilities.argmax(axis=1))
    summary = {
        "model": ref.name,
        "version": ref.version,
        "kind": info.kind,
        "mode": "full-track" if full_track else "store",
        "store": store,
        "scores": scores.version_dir(ref.name, ref.version),
        "selected": plan.n_tracks,
        "scored": len(probabilities),
        "failed": len(attempted),
        "unscorable": len(plan.failures),
        "failures": failures.to_dict("records"),
        "retired": retired,
        "top_labels": dict(top_labels.most_common()),
        "below_threshold": int((probabilities.max(axis=1, initial=0.0) < threshold).sum()),
        "threshold": threshold,
        "n_patches": sum(r.n_patches for r in results),
        "tasks": len(plan.chunks),
        "plan_s": planned_s,
        "compute_s": sum(r.seconds for r in results),
        "wall_s": time.perf_counter() - started,
    }
    _publish(summary)
    return summary


def _run_chunks(
    chunks: list[ScoreChunk],
    spec: ScoreSpec,
    layout: StoreLayout,
    scores: ScoresLayout,
    info: ModelInfo,
    *,
    show_progress: bool,
) -> tuple[list[ChunkScores], list[dict[str, str]]]:
    """Map the chunk task; write each shard's file as soon as its last chunk is back. A chunk that
    fails after its retry lists its tracks as failures; the file still gets the other chunks' rows."""
    futures = score_chunk_task.map(chunks, spec=unmapped(spec), layout=unmapped(layout), ref=unmapped(info.ref))
    waiting = Counter(chunk.shard for chunk in chunks)
    done: dict[int, list[ChunkScores]] = {}
    results: list[ChunkScores] = []
    crashed: list[dict[str, str]] = []
    scored_at = datetime.now(UTC)
    for chunk, outcome in as_they_finish(futures, chunks, desc="score", show_progress=show_progress):
        if isinstance(outcome, ChunkScores):
            done.setdefault(chunk.shard, []).append(outcome)
            results.append(outcome)
        else:
            crashed += [{"track_id": t.track_id, "uri": t.uri, "reason": f"task failed: {outcome}"}
                        for t in chunk.tracks]  # fmt: skip
        waiting[chunk.shard] -= 1
        if waiting[chunk.shard] == 0 and done.get(chunk.shard):
            write_scores(scores, info, chunk.shard, sorted(done.pop(chunk.shard), key=lambda r: r.index), scored_at)
    return results, crashed


def _current_failures(
    scores: ScoresLayout,
    ref: ModelRef,
    unscorable: pd.DataFrame,
    attempted: list[dict[str, str]],
    *,
    planned: list[ScoreChunk],
) -> pd.DataFrame:
    """The version's failures table after this run: earlier failures not resolved by it, plus its own."""
    now = datetime.now(UTC).isoformat()
    fresh = pd.concat([unscorable, pd.DataFrame(attempted, columns=["track_id", "uri", "reason"])], ignore_index=True)
    fresh = fresh.assign(failed_at=now).drop_duplicates("track_id", keep="last")
    succeeded = {t.track_id for c in planned for t in c.tracks} - {f["track_id"] for f in attempted}
    earlier = read_failures(scores, ref.name, ref.version)
    earlier = earlier[~earlier["track_id"].isin(succeeded | set(fresh["track_id"]))]
    table = pd.concat([earlier, fresh], ignore_index=True).sort_values("track_id").reset_index(drop=True)
    write_failures(scores, ref.name, ref.version, table)
    return table


def _publish(summary: dict[str, Any]) -> None:
    """A markdown summary and a table of top labels, keyed by model and version."""
    key = f"score-{summary['model']}-{summary['version']}".lower().replace("_", "-").replace(".", "-")
    create_table_artifact(
        key=f"{key}-labels",
        table=[{"label": label, "tracks": n} for label, n in summary["top_labels"].items()],
        description=f"Top label per track, {summary['model']}@{summary['version']}",
    )
    lines = [
        f"# Scores of {summary['model']}@{summary['version']} ({summary['mode']})",
        f"- {summary['scored']} tracks scored of {summary['selected']} selected, {summary['n_patches']} windows, "
        f"{summary['wall_s']:.1f} s",
        f"- {summary['below_threshold']} tracks with top probability below {summary['threshold']:g}",
        f"- {summary['failed']} failed in this run; {len(summary['failures'])} unscored in all (`_failures.csv`)",
        f"- files: `{summary['scores']}/`",
    ]
    lines += [f"  - `{f['track_id']}` {f['uri']}: {f['reason']}" for f in summary["failures"][:20]]
    create_markdown_artifact(key=f"{key}-summary", markdown="\n".join(lines))
