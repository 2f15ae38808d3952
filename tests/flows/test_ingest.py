"""The ingest flow end to end: real Prefect API, real Dask worker processes, real files and S3."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest
import soundfile as sf

from genreflow.pipeline.audio import ClipWindow, decode_clip
from genreflow.pipeline.demo import make_demo_catalogue
from genreflow.pipeline.extract import ExtractionSpec, compute_features
from genreflow.pipeline.features import parse_feature_sets
from genreflow.pipeline.store import StoreLayout, latest_rows, read_manifest, read_rows
from tests import reliability
from tests.conftest import tone
from tests.processes import worker_processes

pytestmark = pytest.mark.integration
FEATURES = ["mel128", "musicnn96", "wavelet"]


@pytest.fixture(scope="module")
def demo_source(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    make_demo_catalogue(root, per_class=2, seconds=4.0, seed=1)
    return root


def test_local_ingest_is_complete_incremental_and_exact(demo_source, tmp_path, settings):
    from prefect.client.orchestration import get_client

    from genreflow.flows.runtime import run_ingest

    store = str(tmp_path / "store")
    first = run_ingest(
        settings, source=str(demo_source), store=store, feature_sets=FEATURES, shard_size=4, batch_tracks=8,
        backfill=True, show_progress=False,
    )  # fmt: skip
    assert first.dataset == "gtzan" and first.listed == 17
    assert first.counts == {"ok": 14, "failed": 3}
    reasons = " ".join(f.reason for f in first.failures)
    assert "empty file" in reasons and "not audio" in reasons and "truncated" in reasons
    # batches of 8, 8 and 1 tracks, in shards of at most 4, on one set of workers for the whole run
    assert first.batches == 3 and [s.tracks for s in first.shards] == [4, 4, 4, 4, 1]
    pids = {s.pid for s in first.shards}
    assert os.getpid() not in pids and len(pids) <= settings.workers  # shards ran in Dask worker processes
    assert set(first.phases) == {"scan_s", "plan_s", "extract_s", "commit_s"}
    assert first.phases["extract_s"] > 0 and sum(first.phases.values()) <= first.wall_s

    layout = StoreLayout(store)
    manifest = read_manifest(layout)
    batch_ids = [f"{first.run_id}-b{index:05d}" for index in range(3)]
    assert manifest.groupby("run_id").size().to_dict() == dict(zip(batch_ids, [8, 8, 1], strict=True))
    ok_rows = manifest.loc[manifest["status"] == "ok", "row"]
    assert ok_rows.is_unique and len(ok_rows) == 14
    track = manifest[manifest["track_id"] == "gtzan:metal.00001"].iloc[0]
    spec = ExtractionSpec(parse_feature_sets(FEATURES), ClipWindow(seconds=30.0))
    expected = compute_features(decode_clip(track["uri"], window=spec.window), spec)
    for name in FEATURES:
        stored = read_rows(layout, name, [int(track["row"])]).astype(np.float32)
        np.testing.assert_allclose(stored, expected[name].astype(np.float16).astype(np.float32))

    second = run_ingest(settings, source=str(demo_source), store=store, feature_sets=FEATURES, show_progress=False)
    assert second.selected == 0 and second.shards == ()

    changed = next((demo_source / "genres/jazz").glob("jazz.00000.*"))
    sf.write(changed, tone(5, freq=660), 22050)
    third = run_ingest(settings, source=str(demo_source), store=store, feature_sets=FEATURES, show_progress=False)
    assert third.selected == 1 and third.counts == {"ok": 1}
    latest = latest_rows(read_manifest(layout), by="track_id").set_index("track_id")
    assert latest.loc["gtzan:jazz.00000", "duration_s"] == pytest.approx(5.0)
    assert len(latest) == 17  # one row per track: the changed one replaced its old row

    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        [failures] = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"ingest-{first.run_id.lower()}-failures"]))
        )
        run = client.read_flow_run(failures.flow_run_id)
        flow_name = client.read_flow(run.flow_id).name
        artifacts = {
            a.key or a.type: a
            for a in client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
            )
        }
        links = [a.data for a in artifacts.values() if a.data and str(a.data).startswith("[Dask dashboard](")]
    assert flow_name == "backfill"
    assert len(links) == 1 and links[0].startswith("[Dask dashboard](http://127.0.0.1:")  # where Dask users look
    progress = artifacts[f"ingest-{first.run_id.lower()}-progress"]
    assert progress.type == "progress" and float(progress.data) == 100.0
    assert progress.description.startswith("3 of 3 batches committed, 17 of 17 tracks")


def test_s3_source_and_store(tmp_path, settings, s3_endpoint):
    import s3fs

    from genreflow.flows.runtime import run_ingest

    fs = s3fs.S3FileSystem(endpoint_url=s3_endpoint)
    fs.mkdir("audio-bucket")
    fs.mkdir("store-bucket")
    local = tmp_path / "drop"
    local.mkdir()
    sf.write(local / "first song.mp3", tone(3, freq=300, channels=2, sr=44100), 44100)
    sf.write(local / "second.flac", tone(2, freq=500), 22050)
    (local / "bad.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    fs.put(str(local) + "/", "audio-bucket/incoming/", recursive=True)

    def ingest_bucket():
        return run_ingest(
            dataclasses.replace(settings, s3_endpoint_url=s3_endpoint),
            source="s3://audio-bucket/incoming",
            store="s3://store-bucket/genreflow",
            feature_sets=["mel128"],
            show_progress=False,
        )

    summary = ingest_bucket()
    assert summary.dataset == "unlabelled" and summary.counts == {"ok": 2, "failed": 1}
    layout = StoreLayout("s3://store-bucket/genreflow", {"endpoint_url": s3_endpoint})
    manifest = read_manifest(layout)
    assert manifest["uri"].str.startswith("s3://audio-bucket/incoming/").all()
    ok = manifest[manifest["status"] == "ok"]
    assert ok["track_id"].str.startswith("sha256:").all()
    assert np.isfinite(read_rows(layout, "mel128", list(ok["row"])).astype(np.float32)).all()

    fs.put(str(local / "second.flac"), "audio-bucket/incoming/copy of second.flac")
    again = ingest_bucket()
    assert again.selected == 1 and again.counts == {"skipped": 1}  # same content, another name


def test_failures_of_a_run_that_died_are_reported_by_the_run_that_recovers_them(tmp_path, settings):
    """A killed ingest leaves shard receipts; the next run commits them and reports their failures."""
    from genreflow.console import ingest_exit_code
    from genreflow.flows.runtime import run_ingest
    from genreflow.pipeline.datasets import scan_catalogue
    from genreflow.pipeline.extract import run_shard
    from genreflow.pipeline.ingest import plan_shards, select_work
    from genreflow.pipeline.store import FeatureStore

    source = tmp_path / "lib"
    source.mkdir()
    sf.write(source / "good.wav", tone(2), 22050)
    (source / "broken.wav").write_bytes(b"RIFF and nothing else")
    layout = StoreLayout(str(tmp_path / "store"))
    spec = ExtractionSpec(parse_feature_sets(["mel128"]), ClipWindow(seconds=30.0))
    store = FeatureStore(layout)
    store.ensure(spec.feature_sets, window=spec.window, channel_views=spec.channel_views)
    work = select_work(
        scan_catalogue(str(source), dataset="unlabelled"), read_manifest(layout), feature_sets=spec.feature_sets
    )
    [shard] = plan_shards(work, run_id="20261201T000000Z-dead00", row_start=store.allocate(2), rows_per_track=1,
                          shard_size=8)  # fmt: skip
    run_shard(shard, spec, layout)  # the run dies here: receipts written, nothing committed

    summary = run_ingest(settings, source=str(source), store=layout.root, feature_sets=["mel128"], show_progress=False)
    assert summary.recovered_runs == ("20261201T000000Z-dead00",) and summary.selected == 0
    assert summary.counts == {"ok": 1, "failed": 1} and [f.uri for f in summary.failures] == [
        str(source / "broken.wav")
    ]
    assert ingest_exit_code(summary) == 1


def test_a_user_error_in_a_task_is_not_retried(tmp_path, settings):
    """Bad metadata fails the same way every time: the user gets their line at once, not after retries."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName
    from prefect.client.schemas.sorting import TaskRunSort

    from genreflow.flows.ingest import ingest_flow
    from genreflow.flows.runtime import run_ingest
    from genreflow.pipeline.errors import CatalogueError

    make_demo_catalogue(tmp_path / "gtzan", per_class=1, seconds=2.0, broken=False)
    (tmp_path / "gtzan/train_filtered.txt").write_text("not a GTZAN name\n")
    for split in ("valid", "test"):
        (tmp_path / f"gtzan/{split}_filtered.txt").write_text("")
    with pytest.raises(CatalogueError, match=r"train_filtered\.txt, line 1"):  # found before any flow run
        run_ingest(settings, source=str(tmp_path / "gtzan"), store=str(tmp_path / "store"), show_progress=False)
    with pytest.raises(CatalogueError, match=r"train_filtered\.txt, line 1"):  # and by the flow's own listing
        ingest_flow(str(tmp_path / "gtzan"), str(tmp_path / "store"), settings=settings, show_progress=False)
    with get_client(sync_client=True) as client:
        [scan] = client.read_task_runs(task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="scan-source")),
                                       sort=TaskRunSort.EXPECTED_START_TIME_DESC, limit=1)  # fmt: skip
    assert scan.run_count == 1 and scan.state.is_failed()  # no retry: its delays alone were 12 s


@pytest.mark.reliability
@pytest.mark.parametrize(
    ("command", "killed_at"),
    [
        (("backfill", "--batch-tracks", "3"), "two batches committed"),
        (("ingest", "--shard-size", "2"), "two shards done"),
    ],
    ids=["backfill", "ingest"],
)
def test_a_run_killed_mid_way_goes_on_where_it_stopped(tmp_path, settings, command, killed_at):
    """SIGKILL a real `genreflow backfill` between its batches, or a real `genreflow ingest` between its
    shards (finished shards only have their receipts); the same command finishes the work: every
    track once, nothing decoded twice, the values those of a clean run."""
    import signal
    import subprocess
    import sys
    import time

    from genreflow.pipeline.store import open_features

    source = tmp_path / "catalogue"
    for index in range(24):
        label = ("rock", "jazz", "folk")[index % 3]
        (source / label).mkdir(parents=True, exist_ok=True)
        sf.write(source / label / f"{index:02d}.wav", tone(6, freq=200.0 + 37 * index), 22050)
    env = {**os.environ, "GENREFLOW_HOME": str(settings.home)}

    def backfill(store, *extra) -> subprocess.Popen:
        argv = [sys.executable, "-m", "genreflow.cli", command[0], str(source), "--store", str(store),
                "--features", "mel128", *command[1:], "--json", *extra]  # fmt: skip
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    store = tmp_path / "store"
    killed = backfill(store)
    progress = store / ("manifest/part-*.parquet" if command[0] == "backfill" else "runs/*/shard-*.parquet")
    deadline = time.monotonic() + 120
    while len(list(store.glob(str(progress.relative_to(store))))) < 2 and killed.poll() is None:
        assert time.monotonic() < deadline, "no progress to kill in"
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL, killed.stderr.read()  # killed mid-run, not finished
    committed = read_manifest(StoreLayout(str(store)))
    if command[0] == "backfill":
        assert 2 * 3 <= len(committed) < 24
    else:  # nothing committed yet: the finished shards' receipts are all there is
        assert len(committed) == 0 and 2 <= len(list(store.glob("runs/*/shard-*.parquet"))) < 12

    resumed = backfill(store)
    out, err = resumed.communicate(timeout=300)
    found = reliability.check_store(str(store), [str(p) for p in source.rglob("*.wav")])
    reliability.record(f"flow SIGKILLed mid-{command[0]}", faults={"flow process SIGKILL": 1},
                       runs_completed=int(resumed.returncode == 0), **found.as_counts())  # fmt: skip
    assert found == reliability.StoreCheck(0, 0, 0)
    assert resumed.returncode == 0, err
    summary = json.loads(out)
    manifest = read_manifest(StoreLayout(str(store)))
    # nothing decoded twice: one row per file, and the resumed run selected only what was not committed
    assert manifest["uri"].is_unique and len(manifest) == 24 and set(manifest["status"]) == {"ok"}
    recovered = manifest["run_id"].isin(summary["recovered_runs"]).sum()
    assert summary["selected"] == 24 - len(committed) - recovered
    assert summary["counts"] == {"ok": 24 - len(committed)}  # its own and the recovered rows
    assert bool(summary["recovered_runs"]) == (command[0] == "ingest")  # the killed ingest's shards, committed
    ids = open_features(StoreLayout(str(store)))["track_id"][:]
    assert sorted(ids[manifest["row"].astype(int)]) == sorted(manifest["track_id"])
    assert sum(1 for value in ids if value) == 24  # no row holds a track twice; unused rows hold none

    clean_store = tmp_path / "clean"
    clean = backfill(clean_store)
    assert clean.wait(timeout=300) == 0, clean.stderr.read()
    expected = read_manifest(StoreLayout(str(clean_store))).set_index("track_id")["row"]
    rows = manifest.set_index("track_id")["row"].loc[expected.index]
    np.testing.assert_array_equal(
        read_rows(StoreLayout(str(store)), "mel128", list(rows.astype(int))),
        read_rows(StoreLayout(str(clean_store)), "mel128", list(expected.astype(int))),
    )


@pytest.mark.reliability
def test_a_worker_killed_mid_ingest_costs_nothing(tmp_path, settings):
    """SIGKILL a real Dask worker while the shards run: the flow finishes, every track once, and the
    stored values are those of a clean run."""
    import signal
    import threading
    import time

    from genreflow.flows.runtime import run_ingest

    source = tmp_path / "catalogue"
    for index in range(40):
        label = ("rock", "jazz")[index % 2]
        (source / label).mkdir(parents=True, exist_ok=True)
        sf.write(source / label / f"{index:02d}.wav", tone(10, freq=150.0 + 23 * index), 22050)
    store = tmp_path / "store"
    params = {"source": str(source), "feature_sets": ["mel128"], "shard_size": 2, "show_progress": False}
    outcome: dict = {}
    run = threading.Thread(target=lambda: outcome.update(summary=run_ingest(settings, store=str(store), **params)))
    run.start()
    deadline = time.monotonic() + 120
    while not list(store.glob("runs/*/shard-*.parquet")) and run.is_alive() and time.monotonic() < deadline:
        time.sleep(0.005)
    [victim, *_] = worker_processes()
    victim.send_signal(signal.SIGKILL)
    assert run.is_alive(), "the run ended before a worker could be killed"
    run.join(timeout=300)
    found = reliability.check_store(str(store), [str(p) for p in source.rglob("*.wav")])
    reliability.record("Dask worker SIGKILLed mid-ingest", faults={"Dask worker SIGKILL": 1},
                       runs_completed=int("summary" in outcome), **found.as_counts())  # fmt: skip
    assert found == reliability.StoreCheck(0, 0, 0)
    summary = outcome["summary"]
    assert summary.counts == {"ok": 40} and summary.unprocessed == ()  # the lost shard ran again elsewhere
    assert not victim.is_running()  # really gone (its nanny started another)
    manifest = read_manifest(StoreLayout(str(store)))
    assert manifest["uri"].is_unique and len(manifest) == 40

    clean = run_ingest(dataclasses.replace(settings, in_process_tracks=64), store=str(tmp_path / "clean"), **params)
    assert clean.counts == {"ok": 40}
    expected = read_manifest(StoreLayout(str(tmp_path / "clean"))).set_index("track_id")["row"]
    rows = manifest.set_index("track_id")["row"].loc[expected.index]
    np.testing.assert_array_equal(
        read_rows(StoreLayout(str(store)), "mel128", list(rows.astype(int))),
        read_rows(StoreLayout(str(tmp_path / "clean")), "mel128", list(expected.astype(int))),
    )
