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


def test_gtzan_wav_bench_times_both_loops_and_each_genreflow_command(tmp_path, settings):
    from genreflow.bench.ingest import bench_gtzan_wav

    report = bench_gtzan_wav(settings, tracks=3, repeats=1, directory=tmp_path, seconds=2.0)
    lines = report.splitlines()[1:-1]
    assert [line.split("  ")[1] for line in lines] == [
        "serial loop", "joblib loop, 2 processes", "genreflow mel128, 2 workers", "genreflow 3 sets, 2 workers",
        "genreflow again, nothing new", "genreflow 10 tracks (fixed cost)",
    ]  # fmt: skip
    assert sum("x the joblib loop" in line for line in lines) == 2
    assert report.splitlines()[-1].startswith("  feature compute per clip, one thread (ms): mel128 ")
    assert len(list((tmp_path / "loop-output").glob("*.npy"))) == 3  # the loops really ran (the last one's files)
    stored = StoreLayout(str(tmp_path / "store-all"))
    for name in ("mel128", "musicnn96", "wavelet"):  # and genreflow really computed every set of every track
        assert np.isfinite(read_rows(stored, name, slice(0, 3)).astype(np.float32)).all()


def test_gtzan_wav_catalogue_is_recognised_as_gtzan_with_distinct_files(tmp_path):
    from genreflow.bench.clips import make_gtzan_wav
    from genreflow.pipeline.datasets import scan_catalogue

    paths = make_gtzan_wav(tmp_path, tracks=3, seconds=1.0, unique=1)
    catalogue = scan_catalogue(str(tmp_path), dataset="auto")
    assert set(catalogue["dataset"]) == {"gtzan"} and len(catalogue) == 3
    assert len({path.read_bytes() for path in paths}) == 3
    info = sf.info(paths[2])
    assert (info.samplerate, info.channels, info.subtype) == (22050, 1, "PCM_16")
