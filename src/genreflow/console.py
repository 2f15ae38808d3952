"""What a person reads in the terminal: each run's typed summary as text, and the exit codes.

The CLI and :mod:`genreflow.flows.demo` both print through here; the types are only imported for
annotations, so importing this module costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from genreflow.pipeline.embeddings.similar import SimilarResult
    from genreflow.pipeline.embeddings.summary import EmbedSummary
    from genreflow.pipeline.ingest import IngestSummary
    from genreflow.pipeline.nightly import NightlySummary
    from genreflow.pipeline.scoring.summary import ScoreSummary
    from genreflow.pipeline.training.run import TrainResult

EXIT_OK = 0
EXIT_TRACKS_FAILED = 1  # the run finished, but some tracks failed or a shard could not run
EXIT_USAGE = 2  # a bad argument, source, store or metadata: nothing was done
EXIT_LEASE_HELD = 3  # another run is writing the store (its lease names it): nothing was done
EXIT_STORAGE = 4  # the store, a source or an output could not be read or written (S3 down, disk full)
EXIT_INTERRUPTED = 130
FAILURES_SHOWN = 20  # the rest are in the failures table


def ingest_exit_code(summary: IngestSummary) -> int:
    return EXIT_TRACKS_FAILED if summary.failures or summary.unprocessed else EXIT_OK


def score_exit_code(summary: ScoreSummary) -> int:
    """1 when a track this run tried to score failed; tracks it could not try do not change the code."""
    return EXIT_TRACKS_FAILED if summary.failed else EXIT_OK


def describe_ingest(summary: IngestSummary) -> str:
    counts = summary.counts
    lines = [
        f"ingest {summary.run_id}: {summary.listed} listed in {summary.source} ({summary.dataset}), "
        f"{summary.selected} new or changed",
        f"  ok {counts.get('ok', 0)}, failed {counts.get('failed', 0)}, skipped {counts.get('skipped', 0)}, "
        f"removed {counts.get('removed', 0)}, not processed {len(summary.unprocessed)}; "
        + (f"{summary.batches} batches, " if summary.batches > 1 else "")
        + f"{summary.wall_s:.1f} s",
        f"  store: {summary.store} (features: {', '.join(summary.feature_sets)})",
    ]
    if note := summary.recovery_note():
        lines.append(f"  {note}")
    lines += [f"  failed: {f.uri}: {f.reason}" for f in summary.failures]
    lines += [
        f"  label conflict: {c.uri} is labelled {c.label}, but its audio is that of {c.kept_uri} ({c.kept_label}), "
        "which keeps the track"
        for c in summary.label_conflicts
    ]
    lines += [f"  not processed: {f.uri}: {f.reason}" for f in summary.unprocessed]
    return "\n".join(lines)


def describe_training(result: TrainResult) -> str:
    metrics = result.card["metrics"]
    return "\n".join(
        [
            f"trained {result.name}@{result.version} ({result.card['architecture']}) on {result.device}",
            f"  test: accuracy {metrics['accuracy']:.3f}, top-3 {metrics['top3_accuracy']:.3f}, "
            f"macro-F1 {metrics['macro_f1']:.3f} on {metrics['n_tracks']} tracks",
            f"  report: {result.path}/report/index.html",
            *_resumed_lines(result.card.get("fit", {}).get("epochs_run", {})),
            *_selection_lines(result.card.get("selection", {})),
        ]
    )


def _resumed_lines(runs: dict[str, Any]) -> list[str]:
    """A run that resumed an interrupted one: per phase, the epochs it found done and those it trained."""
    resumed = [f"{name} after epoch {r['resumed_from_epoch']} of {r['epochs']} ({len(r['this_run'])} trained now)"
               for name, r in runs.items() if r["resumed_from_epoch"]]  # fmt: skip
    return [f"  resumed an interrupted run: {', '.join(resumed)}"] if resumed else []


def _selection_lines(selection: dict[str, Any]) -> list[str]:
    lines = [
        f"  grid lr={p['learning_rate']:g} batch={p['batch_size']} head={p['head']}: valid accuracy {p['accuracy']:.3f}"
        for p in selection.get("grid", [])
    ]
    if "chosen" in selection:
        lines.append(f"  chosen on validation: {selection['chosen']}")
    if cv := selection.get("cross_validation"):
        lines.append(
            f"  {cv['folds']}-fold cross-validation ({cv.get('fold_source', 'stratified')}): accuracy "
            f"{cv['accuracy']['mean']:.3f} ± {cv['accuracy']['std']:.3f}, "
            f"macro-F1 {cv['macro_f1']['mean']:.3f} ± {cv['macro_f1']['std']:.3f}"
        )
    return lines


def describe_scoring(summary: ScoreSummary) -> str:
    top = ", ".join(f"{label} {n}" for label, n in list(summary.top_labels.items())[:8])
    lines = [
        f"score {summary.model}@{summary.version} ({summary.mode}): {summary.scored} of "
        f"{summary.selected} selected tracks scored, {summary.n_patches} windows, {summary.wall_s:.1f} s",
        f"  top labels: {top or '-'}; {summary.below_threshold} below {summary.threshold:g}",
        f"  scores: {summary.scores}/",
    ]
    shown = summary.failures[:FAILURES_SHOWN]
    lines += [f"  unscored: {f.track_id} {f.uri}: {f.reason}" for f in shown]
    if len(summary.failures) > len(shown):
        lines.append(f"  … {len(summary.failures) - len(shown)} more in {summary.scores}/_failures.csv")
    return "\n".join(lines)


def embed_exit_code(summary: EmbedSummary) -> int:
    """1 when a track this run tried to embed failed, as for scoring."""
    return EXIT_TRACKS_FAILED if summary.failed else EXIT_OK


def describe_embed(summary: EmbedSummary) -> str:
    index = summary.index
    built = f"rebuilt in {index.seconds:.1f} s" if index.rebuilt else "unchanged"
    lines = [
        f"embed {summary.model}@{summary.version}: {summary.embedded} of {summary.selected} selected tracks embedded "
        f"({summary.dim} values each), {summary.retired} retired, {summary.wall_s:.1f} s "
        f"({summary.tracks_per_s:.2f} tracks/s)",
        f"  index: {index.kind}, {index.tracks} tracks, {built}",
        f"  embeddings: {summary.embeddings}/",
    ]
    shown = summary.failures[:FAILURES_SHOWN]
    lines += [f"  not embedded: {f.track_id} {f.uri}: {f.reason}" for f in shown]
    if len(summary.failures) > len(shown):
        lines.append(f"  … {len(summary.failures) - len(shown)} more in {summary.embeddings}/_failures.csv")
    return "\n".join(lines)


def describe_similar(result: SimilarResult) -> str:
    lines = [
        f"tracks like {result.query} ({result.kind}), {result.model}@{result.version}, {result.index} index of "
        f"{result.tracks} tracks, {result.seconds * 1000:.0f} ms",
    ]
    lines += [f"  {rank:2d}. {n.similarity:.4f}  {n.track_id}  {n.uri}" for rank, n in enumerate(result.neighbours, 1)]
    return "\n".join(lines)


def nightly_exit_code(summary: NightlySummary) -> int:
    return EXIT_TRACKS_FAILED if summary.failed else EXIT_OK


def describe_nightly(summary: NightlySummary) -> str:
    top = ", ".join(f"{label} {n}" for label, n in list(summary.labels.items())[:8])
    lines = [
        f"nightly on {summary.store}: {summary.new} new or changed, {summary.failed} failed, {summary.retired} "
        f"retired, {summary.scored} scored, {summary.embedded} embedded; {summary.wall_s:.1f} s "
        f"({', '.join(f'{phase} {seconds:.1f} s' for phase, seconds in summary.phases.items())})",
    ]
    if summary.scorings:
        lines.append(f"  top labels: {top or '-'}; {summary.below_threshold} below {summary.threshold:g}")
    lines += [describe_ingest(i) for i in summary.ingests]
    lines += [describe_scoring(s) for s in summary.scorings]
    if summary.embedding:
        lines.append(describe_embed(summary.embedding))
    return "\n".join(lines)
