"""genreflow on real processes as a cluster runs it: a `dask scheduler`, two `dask worker` processes
(one declaring GPU=1), the Prefect server and moto's S3 server; nightly twice with tracks arriving and
one deleted between, and training landing on the GPU-resource worker."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf

from genreflow.pipeline.demo import make_demo_catalogue
from genreflow.pipeline.store import StoreLayout, current_tracks, read_manifest
from tests.conftest import tone

pytestmark = pytest.mark.integration
DASK = str(Path(sys.executable).parent / "dask")
TAGS = "musicnn-msd-tags"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The scheduler's address; every process started here is stopped here."""
    folder = tmp_path_factory.mktemp("cluster")
    scheduler_file = folder / "scheduler.json"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    processes = [subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                   "--scheduler-file", str(scheduler_file)], **quiet)]  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        for name, extra in (("cpu-worker", []), ("gpu-worker", ["--resources", "GPU=1"])):
            processes.append(subprocess.Popen([DASK, "worker", address, "--nthreads", "1", "--nworkers", "1",
                                               "--no-dashboard", "--name", name, *extra], **quiet))  # fmt: skip
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def test_nights_and_training_on_a_real_cluster_with_s3(tmp_path, settings, s3_endpoint, cluster):
    import s3fs

    from genreflow.flows.runtime import run_ingest, run_nightly, run_train

    fs = s3fs.S3FileSystem(endpoint_url=s3_endpoint)
    for bucket in ("cluster-audio", "cluster-store"):
        fs.mkdir(bucket)
    local = tmp_path / "drop"
    local.mkdir()
    for i in range(3):
        sf.write(local / f"song{i}.wav", tone(4, freq=220 + 110 * i), 22050)
    fs.put(str(local) + "/", "cluster-audio/drop/", recursive=True)
    on_cluster = dataclasses.replace(settings, dask_address=cluster, s3_endpoint_url=s3_endpoint)
    store = "s3://cluster-store/store"
    layout = StoreLayout(store, {"endpoint_url": s3_endpoint})

    first = run_nightly(
        on_cluster, sources=["s3://cluster-audio/drop"], store=store, models=[TAGS], show_progress=False
    )
    assert (first.new, first.scored, first.failed) == (3, 3, 0)
    assert os.getpid() not in {s.pid for s in first.ingests[0].shards}  # the shards ran on the workers

    fs.rm("cluster-audio/drop/song0.wav")
    sf.write(local / "song3.wav", tone(4, freq=660), 22050)
    fs.put(str(local / "song3.wav"), "cluster-audio/drop/song3.wav")
    second = run_nightly(
        on_cluster, sources=["s3://cluster-audio/drop"], store=store, models=[TAGS], show_progress=False
    )
    assert (second.new, second.retired, second.scored) == (1, 1, 1)
    current = current_tracks(read_manifest(layout))
    assert sorted(u.rsplit("/", 1)[1] for u in current["uri"]) == ["song1.wav", "song2.wav", "song3.wav"]
    scores = pd.read_parquet(f"cluster-store/store/scores/model={TAGS}", filesystem=fs)
    assert sorted(scores["track_id"]) == sorted(current["track_id"])

    labelled = tmp_path / "labelled"
    make_demo_catalogue(labelled, per_class=3, seconds=4.0, seed=5, broken=False)
    fs.put(str(labelled) + "/", "cluster-audio/labelled/", recursive=True)
    lab_store = "s3://cluster-store/labelled"
    run_ingest(on_cluster, source="s3://cluster-audio/labelled", store=lab_store, show_progress=False)
    trained = run_train(dataclasses.replace(on_cluster, store=lab_store))
    worker = trained.card["ran_on"]["dask_worker"]
    assert worker["name"] == "gpu-worker" and worker["resources"] == {"GPU": 1.0}
    assert trained.card["device"] == "cpu"  # the resource is declared; TensorFlow sees no GPU here
