"""``genreflow bench nightly``: whole nights timed on a real store, and the planning of a large catalogue."""

from __future__ import annotations

import os
import re

import pytest

pytestmark = pytest.mark.integration


def test_bench_nightly_times_each_night_and_the_planning(tmp_path, settings):
    from genreflow.bench.nightly import bench_nightly

    report = bench_nightly(settings, tracks=3, new=[2], seconds=4.0, plan_tracks=5000, directory=tmp_path,
                           backfill_workers=[1])  # fmt: skip
    lines = report.splitlines()
    assert "first night" in lines[1] and "(ingested 3, scored 3;" in lines[1]
    assert "empty night" in lines[2] and "(ingested 0, scored 0;" in lines[2]
    assert "2 new" in lines[3] and "(ingested 2, scored 2;" in lines[3]  # the arrivals really were new files
    # the same backfill confined to one core, in a process of its own (its workers inherit the core)
    assert "backfill on 1 worker, 1 core" in lines[4] and "(5 tracks in 3 batches" in lines[4]
    assert re.search(r"ran on cores \[\d+\], [0-9.]+ busy\)$", lines[4]), lines[4]
    assert "backfill on 1 worker(s)" in lines[5] and "(5 tracks in 3 batches" in lines[5]  # 3 + 2, by 2
    assert re.search(r"tracks/s, [0-9.]+x 1 worker on 1 core \(target 1.7x\);", lines[5]), lines[5]
    busy = float(re.search(r"; ([0-9.]+) of (\d+) cores busy\)", lines[5])[1])
    assert 0 < busy <= os.cpu_count() + 0.05  # measured on the machine, whatever else it ran
    assert "planning a 5,000-track catalogue" in lines[6] and "MiB" in lines[6]


def test_planning_cost_runs_the_diff_and_allocates_the_rows(tmp_path):
    import zarr

    from genreflow.bench.nightly import planning_cost

    seconds, peak_mib = planning_cost(10_000, tmp_path / "plan")
    assert seconds > 0 and peak_mib > 50  # a real process held the frames
    rows = zarr.open_group(str(tmp_path / "plan/features.zarr"), mode="r")["track_id"].shape[0]
    assert rows == 100  # 1 % of the catalogue is new
