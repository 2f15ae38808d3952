"""S3 on a bad night: moto's server behind a proxy that fails requests with 500/503, drops connections
and adds latency (:mod:`tests.faults`). Retries carry an ingest and a scoring run through to the
results of a clean run; an S3 that stays down fails the run in bounded time, with one line naming the
store, and leaves the store as it was for the next run."""

from __future__ import annotations

import dataclasses
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from genreflow.pipeline.store import StoreLayout, read_manifest, read_rows
from genreflow.pipeline.store.doctor import check_store
from tests import reliability
from tests.conftest import tone
from tests.faults import FaultProxy, Faults

pytestmark = [pytest.mark.integration, pytest.mark.reliability]
TAGS = "musicnn-msd-tags"
BUCKET = "fault-bucket"
TRACKS = 6
GENREFLOW = str(Path(sys.executable).parent / "genreflow")


def _ingest(settings, store):
    from genreflow.flows.runtime import run_ingest

    return run_ingest(settings, source=f"s3://{BUCKET}/source", store=store, feature_sets=["musicnn96"],
                      dataset="unlabelled", show_progress=False)  # fmt: skip


def _score(settings, store):
    from genreflow.flows.runtime import run_score

    return run_score(settings, store=store, model=TAGS, show_progress=False)


def _put_wav(fs, path: str, freq: float) -> None:
    buffer = io.BytesIO()
    sf.write(buffer, tone(4, freq=freq), 22050, format="WAV")
    fs.pipe(path, buffer.getvalue())


@pytest.fixture(scope="module")
def s3(s3_endpoint):
    import s3fs

    fs = s3fs.S3FileSystem(endpoint_url=s3_endpoint)
    fs.mkdir(BUCKET)
    for i in range(TRACKS):
        _put_wav(fs, f"{BUCKET}/source/t{i}.wav", 180 + 60 * i)
    fs.pipe(f"{BUCKET}/source/broken.wav", b"RIFF not really")
    return fs


def _stored(layout: StoreLayout) -> tuple[pd.DataFrame, np.ndarray]:
    """The manifest's current rows by file, and their musicnn96 values in that order."""
    manifest = read_manifest(layout)
    assert manifest["uri"].is_unique  # one row per file: no track was committed twice
    manifest = manifest.set_index("uri").sort_index()
    ok = manifest[manifest["status"] == "ok"]
    return manifest[["status", "error", "track_id", "content_hash"]], read_rows(
        layout, "musicnn96", list(ok["row"].astype(int))
    )


def _sources(fs) -> list[str]:
    """The source's files that should end ``ok``."""
    return [f"s3://{path}" for path in fs.find(f"{BUCKET}/source") if not path.endswith("broken.wav")]


def _scores(fs, store: str) -> pd.DataFrame:
    table = pd.read_parquet(f"{store.removeprefix('s3://')}/scores/model={TAGS}", filesystem=fs)
    return table.drop(columns=["scored_at"]).set_index("uri").sort_index()


def test_retries_carry_ingest_and_scoring_through_a_flaky_s3(settings, s3_endpoint, s3):
    clean = dataclasses.replace(settings, s3_endpoint_url=s3_endpoint, in_process_tracks=64)
    _ingest(clean, f"s3://{BUCKET}/clean")
    _score(clean, f"s3://{BUCKET}/clean")

    with FaultProxy(s3_endpoint, Faults(error_every=5, drop_every=7, latency_s=0.01)) as proxy:
        flaky = dataclasses.replace(settings, s3_endpoint_url=proxy.url, workers=1)  # a real worker process
        ingested = _ingest(flaky, f"s3://{BUCKET}/flaky")
        scored = _score(flaky, f"s3://{BUCKET}/flaky")
    found = reliability.check_store(f"s3://{BUCKET}/flaky", _sources(s3), storage_options={"endpoint_url": s3_endpoint})
    reliability.record("flaky S3 (ingest, score)", faults={f"S3 {kind}": n for kind, n in proxy.injected.items()},
                       runs_completed=2, **found.as_counts())  # fmt: skip
    assert found == reliability.StoreCheck(0, 0, 0)
    assert min(proxy.injected[kind] for kind in ("503", "500", "drop")) >= 3, proxy.injected  # it was a bad night
    assert ingested.counts == {"ok": TRACKS, "failed": 1} and not ingested.unprocessed
    assert scored.scored == TRACKS and not scored.failed

    options = {"endpoint_url": s3_endpoint}
    flaky_manifest, flaky_values = _stored(StoreLayout(f"s3://{BUCKET}/flaky", options))
    clean_manifest, clean_values = _stored(StoreLayout(f"s3://{BUCKET}/clean", options))
    pd.testing.assert_frame_equal(flaky_manifest, clean_manifest)  # one row per file, the same outcomes
    np.testing.assert_array_equal(flaky_values, clean_values)
    flaky_scores, clean_scores = _scores(s3, f"s3://{BUCKET}/flaky"), _scores(s3, f"s3://{BUCKET}/clean")
    assert flaky_scores.index.is_unique and len(flaky_scores) == TRACKS
    pd.testing.assert_frame_equal(flaky_scores, clean_scores, check_exact=False, rtol=1e-5)


def test_an_s3_that_stays_down_fails_the_run_in_bounded_time_and_loses_nothing(settings, s3_endpoint, s3):
    store = f"s3://{BUCKET}/outage"
    layout = StoreLayout(store, {"endpoint_url": s3_endpoint})
    _ingest(dataclasses.replace(settings, s3_endpoint_url=s3_endpoint, in_process_tracks=64), store)
    before = _stored(layout)
    _put_wav(s3, f"{BUCKET}/source/arrived-tonight.wav", 999)
    command = [GENREFLOW, "ingest", f"s3://{BUCKET}/source", "--store", store, "--dataset", "unlabelled",
               "--features", "musicnn96"]  # fmt: skip

    with FaultProxy(s3_endpoint, Faults(down=True)) as proxy:
        started = time.monotonic()
        run = subprocess.run(command, env=dict(os.environ, GENREFLOW_S3_ENDPOINT_URL=proxy.url),
                             capture_output=True, text=True, timeout=300)  # fmt: skip
        took = time.monotonic() - started
    assert proxy.injected["down"] and not proxy.forwarded
    assert run.returncode == 4, run.stderr
    line = run.stderr.strip()
    assert line.count("\n") == 0 and "Traceback" not in line
    assert line.startswith(f"genreflow: error: store {store}: S3 answered 503 ServiceUnavailable after its retries"), (
        line
    )
    assert took < 120

    pd.testing.assert_frame_equal(_stored(layout)[0], before[0])  # what was committed is as it was
    assert check_store(layout) == []
    again = subprocess.run(command, env=dict(os.environ, GENREFLOW_S3_ENDPOINT_URL=s3_endpoint),
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    found = reliability.check_store(store, _sources(s3), storage_options={"endpoint_url": s3_endpoint})
    reliability.record("S3 down", faults={"S3 down (503)": proxy.injected["down"]},
                       runs_completed=int(again.returncode == 0), **found.as_counts())  # fmt: skip
    assert found == reliability.StoreCheck(0, 0, 0)
    assert again.returncode == 0, again.stderr
    manifest = _stored(layout)[0]
    assert manifest.loc[f"s3://{BUCKET}/source/arrived-tonight.wav", "status"] == "ok"
    assert len(manifest) == len(before[0]) + 1
