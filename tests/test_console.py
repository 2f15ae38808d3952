"""The text the CLI prints for each run summary."""

from __future__ import annotations

from genreflow.console import FAILURES_SHOWN, describe_scoring, score_exit_code
from genreflow.pipeline.scoring.summary import ScoreSummary, UnscoredTrack


def _summary(**changes) -> ScoreSummary:
    failures = tuple(UnscoredTrack(f"t{i}", f"/a/{i}.mp3", "empty file (0 bytes)", "2026-12-01") for i in range(25))
    values = {"model": "genre", "version": "v1", "kind": "classes", "mode": "store", "store": "/s",
              "scores": "/s/model=genre/version=v1", "selected": 3, "scored": 3, "failed": 0, "unscorable": 25,
              "failures": failures, "retired": 0, "top_labels": {"rock": 2, "jazz": 1}, "below_threshold": 0,
              "threshold": 0.5, "n_patches": 30, "tasks": 1, "plan_s": 0.1, "compute_s": 0.5,
              "wall_s": 1.0}  # fmt: skip
    return ScoreSummary(**{**values, **changes})


def test_the_score_summary_lists_a_few_failures_and_points_at_the_rest():
    text = describe_scoring(_summary())
    assert text.count("unscored: ") == FAILURES_SHOWN and "top labels: rock 2, jazz 1" in text
    assert text.endswith(f"… {25 - FAILURES_SHOWN} more in /s/model=genre/version=v1/_failures.csv")


def test_only_tracks_a_run_tried_and_failed_change_the_exit_code():
    assert score_exit_code(_summary()) == 0  # 25 unscorable (their ingest failed) do not
    assert score_exit_code(_summary(failed=1)) == 1
