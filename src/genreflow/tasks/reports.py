"""Prefect artifacts that show a person what a run did."""

from __future__ import annotations

from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact


def publish_ingest_report(summary: dict[str, Any]) -> None:
    """Counts per label and status, and every failed file with its reason."""
    key = f"ingest-{summary['run_id'].lower()}"  # artifact keys: lowercase letters, digits, dashes
    create_table_artifact(
        key=f"{key}-labels",
        table=[{"label": label, **counts} for label, counts in sorted(summary["by_label"].items())],
        description=f"Tracks per label and status, run {summary['run_id']}",
    )
    failures = summary["failures"] or [{"uri": "-", "reason": "no failures"}]
    create_table_artifact(key=f"{key}-failures", table=failures, description="Failed files and why")
    create_markdown_artifact(key=f"{key}-summary", markdown=summary_markdown(summary))


def summary_markdown(summary: dict[str, Any]) -> str:
    counts = summary["counts"]
    return "\n".join(
        [
            f"# Ingest {summary['run_id']}",
            f"- source: `{summary['source']}` ({summary['dataset']}), store: `{summary['store']}`",
            f"- listed {summary['listed']}, selected {summary['selected']} (new or changed)",
            f"- ok {counts.get('ok', 0)}, failed {counts.get('failed', 0)}, skipped {counts.get('skipped', 0)}, "
            f"not processed {len(summary['unprocessed'])}",
            f"- wall {summary['wall_s']:.1f} s, shard compute {summary['compute_s']:.1f} s",
        ]
    )
