"""``genreflow bench score``: bare ``predict_on_batch`` against the flow, in one report."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_bench_score_reports_bare_predict_and_flow_figures(tmp_path, settings):
    from genreflow.bench.score import bench_score

    report = bench_score(settings, tracks=3, seconds=4.0, directory=tmp_path)
    assert "bare predict_on_batch" in report and "flow overhead over bare predict" in report
    assert report.count("tracks/s") == 2 and "full-track" in report
