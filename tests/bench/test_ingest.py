"""``genreflow bench ingest``: the report's lines, and the catalogue it generates."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from genreflow.pipeline.store import StoreLayout, read_rows

pytestmark = pytest.mark.integration


def test_bench_reports_baseline_and_flow_ratios(tmp_path, settings):
    from genreflow.bench.ingest import bench_ingest

    report = bench_ingest(settings, tracks=4, seconds=2.0, directory=tmp_path)
    assert "serial baseline" in report and report.count("x baseline") == 3
    assert "wavelet/mel128 =" in report and "peak worker RSS" in report and "manifest diff" in report
    assert len(list((tmp_path / "baseline").glob("*.npy"))) == 4
    assert "plain processes (no Prefect, no Dask)" in report
    ceiling_store = StoreLayout(str(tmp_path / "store-plain"))
    for name in ("mel128", "musicnn96", "wavelet"):  # the ceiling run really computed and stored every track
        assert np.isfinite(read_rows(ceiling_store, name, slice(0, 4)).astype(np.float32)).all()


def test_bench_catalogue_copies_have_own_bytes_but_decode_identically(tmp_path):
    from genreflow.bench.clips import make_clips

    first, copy = make_clips(tmp_path, tracks=2, seconds=1.0, unique=1)
    assert first.read_bytes() != copy.read_bytes()
    np.testing.assert_array_equal(sf.read(first)[0], sf.read(copy)[0])
