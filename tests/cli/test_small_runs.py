"""Small nights: nothing new is answered from the listing and the manifest, without Prefect or workers;
a few new tracks are decoded on the flow's own threads, without starting worker processes."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest
import soundfile as sf

from genreflow.flows.runtime import run_ingest
from genreflow.pipeline.datasets import scan_catalogue, source_uri
from genreflow.pipeline.features import MEL128, MUSICNN96
from genreflow.pipeline.ingest import IngestPreview, preview_ingest
from genreflow.pipeline.store import StoreLayout
from tests.conftest import tone

pytestmark = pytest.mark.integration

PROBE = """
import json, sys
from genreflow.cli import main
code = main(sys.argv[1:])
heavy = sorted({m.split('.')[0] for m in sys.modules} & {'prefect', 'distributed', 'dask', 'scipy', 'tensorflow'})
print(json.dumps({"code": code, "heavy": heavy}))
"""


def _library(tmp_path):
    source = tmp_path / "lib"
    source.mkdir()
    for index in range(2):
        sf.write(source / f"t{index}.wav", tone(2, freq=300.0 + 100 * index), 22050)
    return source


def test_nothing_new_loads_no_prefect_and_a_changed_file_still_runs_the_flow(tmp_path, settings):
    source, store = _library(tmp_path), tmp_path / "store"
    params = {"dataset": "unlabelled", "feature_sets": ["mel128"], "show_progress": False}
    small = dataclasses.replace(settings, in_process_tracks=64)
    first = run_ingest(small, source=str(source), store=str(store), **params)
    assert (first.selected, first.counts) == (2, {"ok": 2})  # the flow ran ...
    assert [shard.pid for shard in first.shards] == [os.getpid()] * 2  # ... its two shards on this process

    argv = ["ingest", str(source), "--store", str(store), "--dataset", "unlabelled", "--features", "mel128", "--json"]
    env = {**os.environ, "GENREFLOW_HOME": str(settings.home)}
    probe = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, env=env)
    assert probe.returncode == 0, probe.stderr
    summary, result = json.JSONDecoder().raw_decode(probe.stdout)  # the summary, then the probe's line
    assert json.loads(probe.stdout[result:]) == {"code": 0, "heavy": []}
    assert (summary["listed"], summary["selected"], summary["counts"]) == (2, 0, {})

    sf.write(source / "t1.wav", tone(2, freq=900.0), 22050)  # changed: the flow runs again and decodes it
    again = run_ingest(settings, source=str(source), store=str(store), **params)  # in_process_tracks=0
    assert (again.selected, again.counts) == (1, {"ok": 1}) and again.shards[0].pid != os.getpid()


def test_anything_to_do_or_to_check_is_left_to_the_flow(tmp_path, settings):
    source, store = _library(tmp_path), tmp_path / "store"
    run_ingest(settings, source=str(source), store=str(store), dataset="unlabelled", feature_sets=["mel128"],
               show_progress=False)  # fmt: skip
    layout = StoreLayout(str(store))

    def check(catalogue=None, **changes) -> IngestPreview:
        request = {"dataset": "unlabelled", "feature_sets": [MEL128], "window_s": None, "min_duration_s": 1.0,
                   "channel_views": ["mid"], "retry_failed": False} | changes  # fmt: skip
        listing = scan_catalogue(str(source), dataset="unlabelled") if catalogue is None else catalogue
        return preview_ingest(layout, listing, source=source_uri(str(source)), **request)

    assert check() == IngestPreview(to_decode=0, up_to_date=True)
    unknown = IngestPreview(to_decode=None, up_to_date=False)  # the flow refuses other settings in one line
    assert check(window_s=10.0) == unknown and check(channel_views=["mid", "left", "right"]) == unknown
    assert check(feature_sets=[MEL128, MUSICNN96]) == unknown  # a set to add to the store
    listing = scan_catalogue(str(source), dataset="unlabelled")
    assert check(listing.iloc[:1]) == IngestPreview(to_decode=0, up_to_date=False)  # the flow retires a vanished file
    sf.write(source / "t0.wav", tone(3, freq=800.0), 22050)
    assert check() == IngestPreview(to_decode=1, up_to_date=False)  # changed: decoded again
