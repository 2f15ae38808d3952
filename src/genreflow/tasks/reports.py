"""Prefect artifacts that show a person what a run did: one place for ingest, training and scoring."""

from __future__ import annotations

import dataclasses
import re
import time
from datetime import UTC, datetime, timedelta

from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from genreflow.pipeline.embeddings.summary import EmbedSummary
from genreflow.pipeline.ingest import IngestSummary
from genreflow.pipeline.nightly import NightlySummary
from genreflow.pipeline.scoring.summary import ScoreSummary
from genreflow.pipeline.training.run import TrainResult

FAILURES_LISTED = 20  # the rest are in the run's failures table


def artifact_key(*parts: str) -> str:
    """An artifact key from names and versions: Prefect takes lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-")


def publish_ingest_report(summary: IngestSummary) -> None:
    """Counts per label and status, and every failed file with its reason."""
    key = artifact_key("ingest", summary.run_id)
    create_table_artifact(
        key=f"{key}-labels",
        table=[{"label": label, **counts} for label, counts in sorted(summary.by_label.items())],
        description=f"Tracks per label and status, run {summary.run_id}",
    )
    failures = [{"uri": f.uri, "reason": f.reason} for f in summary.failures] or [{"uri": "-", "reason": "no failures"}]
    create_table_artifact(key=f"{key}-failures", table=failures, description="Failed files and why")
    if summary.label_conflicts:
        create_table_artifact(
            key=f"{key}-label-conflicts",
            table=[dataclasses.asdict(conflict) for conflict in summary.label_conflicts],
            description="The same audio under two labels: the first file was skipped, the kept file's label stands",
        )
    create_markdown_artifact(key=f"{key}-summary", markdown=ingest_markdown(summary))


def publish_dashboard(link: str) -> None:
    """The Dask dashboard of the run's workers, on the run's artifacts page (live while the run is)."""
    create_link_artifact(link, link_text="Dask dashboard", description="The Dask dashboard of this run's workers")


class BatchProgress:
    """A run's batches as a Prefect progress artifact (percent of tracks, batches done / to do, ETA),
    updated as each batch commits; a run of one batch (a night) makes none."""

    def __init__(self, run_id: str, *, batches: int, tracks: int) -> None:
        self.batches, self.tracks = batches, tracks
        self.started = time.monotonic()
        self.artifact = None
        if batches > 1:
            self.artifact = create_progress_artifact(
                0.0, key=artifact_key("ingest", run_id, "progress"), description=self.describe(0, 0)
            )

    def advance(self, *, batches_done: int, tracks_done: int) -> None:
        if self.artifact is not None:
            percent = 100.0 * tracks_done / max(self.tracks, 1)
            update_progress_artifact(self.artifact, percent, description=self.describe(batches_done, tracks_done))

    def describe(self, batches_done: int, tracks_done: int) -> str:
        text = f"{batches_done} of {self.batches} batches committed, {tracks_done} of {self.tracks} tracks"
        if 0 < tracks_done < self.tracks:
            left_s = (time.monotonic() - self.started) * (self.tracks - tracks_done) / tracks_done
            eta = datetime.now(UTC) + timedelta(seconds=left_s)
            text += f"; ETA {eta:%Y-%m-%d %H:%M} UTC ({left_s / 60:.0f} min left)"
        return text


def ingest_markdown(summary: IngestSummary) -> str:
    counts = summary.counts
    return "\n".join(
        [
            f"# Ingest {summary.run_id}",
            f"- source: `{summary.source}` ({summary.dataset}), store: `{summary.store}`",
            f"- listed {summary.listed}, selected {summary.selected} (new or changed)",
            f"- ok {counts.get('ok', 0)}, failed {counts.get('failed', 0)}, skipped {counts.get('skipped', 0)}, "
            f"removed {counts.get('removed', 0)}, not processed {len(summary.unprocessed)}, "
            f"label conflicts {len(summary.label_conflicts)}",
            f"- {summary.batches} batches committed" + (f"; {note}" if (note := summary.recovery_note()) else ""),
            f"- wall {summary.wall_s:.1f} s, shard compute {summary.compute_s:.1f} s",
        ]
    )


def publish_train_report(result: TrainResult) -> None:
    """Per-class test figures and a summary of the registered version."""
    metrics = result.card["metrics"]
    key = artifact_key("train", result.name, result.version)
    create_table_artifact(
        key=f"{key}-classes",
        table=[{"class": name, **values} for name, values in metrics["per_class"].items()],
        description=f"Per-class test figures of {result.name}@{result.version}",
    )
    fit = result.card.get("fit", {})
    if len(fit.get("candidates", ())) > 1:  # --backbone auto: every candidate probe's inner figures
        create_table_artifact(
            key=f"{key}-backbones",
            table=[{k: v for k, v in c.items() if k != "per_C"} for c in fit["candidates"]],
            description=f"Candidate probes of {result.name}@{result.version}, inner cross-validation: {fit['why']}",
        )
    create_markdown_artifact(
        key=f"{key}-summary",
        markdown="\n".join(
            [
                f"# {result.name}@{result.version} ({result.card['architecture']}, {result.device})",
                f"- test accuracy {metrics['accuracy']:.3f}, top-3 {metrics['top3_accuracy']:.3f}, "
                f"macro-F1 {metrics['macro_f1']:.3f} on {metrics['n_tracks']} tracks",
                *([f"- backbone: {fit['why']}"] if "why" in fit else []),
                *([f"- C = {fit['C']:g}, {fit['inner_cv']['fold_source']} inside train + valid"] if "C" in fit else []),
                f"- report: `{result.path}/report/index.html`",
            ]
        ),
    )


def publish_score_report(summary: ScoreSummary) -> None:
    """A table of top labels and a markdown summary, keyed by model and version."""
    key = artifact_key("score", summary.model, summary.version)
    create_table_artifact(
        key=f"{key}-labels",
        table=[{"label": label, "tracks": n} for label, n in summary.top_labels.items()],
        description=f"Top label per track, {summary.model}@{summary.version}",
    )
    lines = [
        f"# Scores of {summary.model}@{summary.version} ({summary.mode})",
        f"- {summary.scored} tracks scored of {summary.selected} selected, {summary.n_patches} windows, "
        f"{summary.wall_s:.1f} s",
        f"- {summary.below_threshold} tracks with top probability below {summary.threshold:g}",
        f"- {summary.failed} failed in this run; {len(summary.failures)} unscored in all (`_failures.csv`)",
        f"- files: `{summary.scores}/`",
    ]
    lines += [f"  - `{f.track_id}` {f.uri}: {f.reason}" for f in summary.failures[:FAILURES_LISTED]]
    create_markdown_artifact(key=f"{key}-summary", markdown="\n".join(lines))


def publish_embed_report(summary: EmbedSummary) -> None:
    """A markdown summary of an embedding run and the index it left."""
    index = summary.index
    lines = [
        f"# Embeddings of {summary.model}@{summary.version}",
        f"- {summary.embedded} tracks embedded of {summary.selected} selected ({summary.dim} values each), "
        f"{summary.retired} rows retired, {summary.wall_s:.1f} s",
        f"- index: {index.kind}, {index.tracks} tracks, " + (f"rebuilt in {index.seconds:.1f} s" if index.rebuilt
                                                            else "unchanged"),
        f"- {summary.failed} failed in this run; {len(summary.failures)} without an embedding in all (`_failures.csv`)",
        f"- files: `{summary.embeddings}/`",
    ]  # fmt: skip
    create_markdown_artifact(key=artifact_key("embed", summary.model, summary.version), markdown="\n".join(lines))


def publish_nightly_report(summary: NightlySummary) -> None:
    """One markdown summary of the night: what came in, what failed, what was retired and scored."""
    lines = [
        f"# Nightly run on `{summary.store}`",
        f"- new or changed {summary.new}, failed {summary.failed}, retired {summary.retired}, scored {summary.scored}, "
        f"embedded {summary.embedded}",
        f"- {summary.below_threshold} tracks with top probability below {summary.threshold:g}",
        "- wall time: "
        + ", ".join(f"{phase} {seconds:.1f} s" for phase, seconds in summary.phases.items())
        + f"; {summary.wall_s:.1f} s in all",
    ]
    lines += [f"- `{i.source}`: listed {i.listed}, selected {i.selected}, {i.counts}" for i in summary.ingests]
    lines += [
        f"- {s.model}@{s.version}: scored {s.scored} of {s.selected}, failed {s.failed}" for s in summary.scorings
    ]
    if summary.labels:
        lines += ["", "| label | tracks |", "|---|---|", *(f"| {k} | {n} |" for k, n in summary.labels.items())]
    create_markdown_artifact(key=artifact_key("nightly", summary.ingests[0].run_id if summary.ingests else "run"),
                             markdown="\n".join(lines))  # fmt: skip
