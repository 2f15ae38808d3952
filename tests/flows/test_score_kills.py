"""Processes killed mid-scoring (issue #12): a Dask worker SIGKILLed under a running scoring flow, and
the flow process itself SIGKILLed under a real ``genreflow score``. Either way the work ends done once:
one row per track, the values of a clean run, and no reader ever sees a half-written file."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from genreflow.infra.devices import cpu_threads_per_worker
from genreflow.pipeline.store import FeatureStore, StoreLayout, read_manifest
from genreflow.pipeline.store.lease import read_lease
from genreflow.pipeline.store.scores import SHARD_ROWS, shard_of
from tests import reliability
from tests.conftest import tone
from tests.processes import worker_processes

pytestmark = [pytest.mark.integration, pytest.mark.reliability]
TAGS = "musicnn-msd-tags"
TAGS_DIR = f"model={TAGS}/version=musicnn-0.1.0"
SHARDS = 3  # score files in play
PER_SHARD = 4  # tracks in each
TRACKS = SHARDS * PER_SHARD
CHUNK_SIZE = 1  # a task per track: many tasks to land a kill among, and a batch that is one track's patches


@dataclasses.dataclass(frozen=True)
class ScoredStore:
    store: str
    track_ids: list[str]
    clean: Path  # the scores root of a clean run


def _score(settings, store, **params):
    from genreflow.flows.runtime import run_score

    return run_score(settings, store=store, model=TAGS, chunk_size=CHUNK_SIZE, show_progress=False, **params)


@pytest.fixture(scope="module")
def scored_store(tmp_path_factory, settings) -> ScoredStore:
    """A store whose tracks span :data:`SHARDS` score files, and a clean scoring run of it.

    Each ingest's tracks take the first rows of a 1024-row range, the rows after them are allocated and
    left unused (as a failed track's row is), so a dozen short clips fill three files as a big store would.
    """
    from genreflow.flows.runtime import run_ingest

    root = tmp_path_factory.mktemp("score-kills")
    source, store = root / "catalogue", root / "store"
    in_process = dataclasses.replace(settings, in_process_tracks=64)  # decoding is not what is tested here
    for shard in range(SHARDS):
        for i in range(PER_SHARD):
            index = shard * PER_SHARD + i
            path = source / ("rock", "jazz")[index % 2] / f"{index:02d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, tone(7, freq=180.0 + 41 * index), 22050)
        summary = run_ingest(in_process, source=str(source), store=str(store), feature_sets=["musicnn96"],
                             dataset="folder", show_progress=False)  # fmt: skip
        assert summary.counts == {"ok": PER_SHARD}
        features = FeatureStore(StoreLayout(str(store)))
        features.allocate((shard + 1) * SHARD_ROWS - features.n_rows)
    manifest = read_manifest(StoreLayout(str(store)))
    assert manifest["row"].map(shard_of).value_counts().to_dict() == dict.fromkeys(range(SHARDS), PER_SHARD)

    # One worker, with the threads each of two has: the same computation as every run below, one
    # TensorFlow start fewer.
    one = dataclasses.replace(settings, workers=1)
    clean = _score(one, str(store), out=str(root / "clean"), threads=cpu_threads_per_worker(settings.workers))
    assert (clean.selected, clean.scored, clean.failed, clean.tasks) == (TRACKS, TRACKS, 0, TRACKS)
    assert len(_parts(root / "clean")) == SHARDS
    return ScoredStore(str(store), sorted(manifest["track_id"]), root / "clean")


def _parts(out: Path) -> list[Path]:
    return sorted((out / TAGS_DIR).glob("part-*.parquet"))


def _assert_clean_values(out: Path, clean: Path, track_ids: list[str]) -> pd.DataFrame:
    """The rows under ``out``, one per track of ``track_ids``, equal to the clean run's value by value
    (float32-exact: each track's patches make one batch in every run); returns them."""
    got = pd.read_parquet(out).set_index("track_id").sort_index()
    assert got.index.is_unique and list(got.index) == sorted(track_ids)
    want = pd.read_parquet(clean).set_index("track_id").loc[got.index]
    probabilities = [c for c in want.columns if c.startswith("p_")]
    assert len(probabilities) == 50 and (got[probabilities].dtypes == np.float32).all()
    np.testing.assert_array_equal(got[probabilities].to_numpy(), want[probabilities].to_numpy())
    pd.testing.assert_frame_equal(got.drop(columns="scored_at"), want.drop(columns="scored_at"), check_exact=True)
    return got


def test_a_worker_killed_mid_scoring_costs_nothing(scored_store, tmp_path, settings):
    """SIGKILL a real Dask worker once the first score file is written and others are still to come:
    the flow finishes, every track has one row, and the rows are those of a clean run."""
    out = tmp_path / "scores"
    earlier = {p.pid for p in worker_processes()}  # a finished run's workers, if any are still going
    outcome: dict = {}
    run = threading.Thread(target=lambda: outcome.update(summary=_score(settings, scored_store.store, out=str(out))))
    run.start()
    deadline = time.monotonic() + 120
    while not _parts(out) and run.is_alive() and time.monotonic() < deadline:
        time.sleep(0.005)
    workers = [p for p in worker_processes() if p.pid not in earlier]
    assert len(workers) == settings.workers and all(p.is_running() for p in workers)
    [victim, *_] = workers
    victim.send_signal(signal.SIGKILL)
    written = {int(path.stem.split("-")[1]) for path in _parts(out)}  # shards whose chunks the flow had
    assert run.is_alive() and 1 <= len(written) < SHARDS, "the kill did not land mid-run"
    run.join(timeout=300)
    found = reliability.check_scores(str(out), scored_store.track_ids)
    reliability.record("Dask worker SIGKILLed mid-scoring", faults={"Dask worker SIGKILL": 1},
                       runs_completed=int("summary" in outcome), **found.as_counts())  # fmt: skip
    assert found == reliability.StoreCheck(0, 0, 0)
    summary = outcome["summary"]
    assert (summary.selected, summary.scored, summary.failed) == (TRACKS, TRACKS, 0)
    assert not victim.is_running()  # really gone (its nanny started another)
    assert len(_parts(out)) == SHARDS
    # Every chunk task ended completed, and none the flow had already taken ran again: Dask recomputes a
    # result it still keeps for the flow when the worker holding it dies (it did, before the flow
    # released each result it had taken: the victim's finished chunks ran twice, one left "Running").
    histories = _chunk_states_of_last_run()
    assert len(histories) == TRACKS and all(states[-1] == "COMPLETED" for states in histories.values()), histories
    taken = {name: states for name, states in histories.items() if int(name.split("-")[1]) // PER_SHARD in written}
    assert len(taken) == PER_SHARD * len(written)  # chunk i is track i in row order, CHUNK_SIZE 1
    assert all(states.count("COMPLETED") == 1 for states in taken.values()), taken
    _assert_clean_values(out, scored_store.clean, scored_store.track_ids)


def _chunk_states_of_last_run(patience_s: float = 10.0) -> dict[str, list[str]]:
    """Each chunk task run of the newest scoring flow run: its state types in order. Task states reach
    the API as events, so wait (a while) until each one's last is final."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterId,
        TaskRunFilter,
        TaskRunFilterName,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    deadline = time.monotonic() + patience_s
    with get_client(sync_client=True) as client:
        scoring = FlowFilter(name=FlowFilterName(any_=["genreflow-score"]))
        [run] = client.read_flow_runs(flow_filter=scoring, sort=FlowRunSort.START_TIME_DESC, limit=1)
        of_run = FlowRunFilter(id=FlowRunFilterId(any_=[run.id]))
        chunks = TaskRunFilter(name=TaskRunFilterName(like_="score-"))
        while True:
            tasks = client.read_task_runs(flow_run_filter=of_run, task_run_filter=chunks)
            histories = {t.name: [s.type.value for s in client.read_task_run_states(t.id)] for t in tasks}
            if all(h and h[-1] in ("COMPLETED", "FAILED", "CRASHED") for h in histories.values()):
                return histories
            if time.monotonic() > deadline:
                return histories
            time.sleep(0.5)


def _gone(process) -> bool:
    import psutil

    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_scoring_run_killed_mid_run_is_finished_by_the_next(scored_store, tmp_path):
    """SIGKILL a real ``genreflow score`` between two of its score files: its workers leave, what it
    wrote reads whole, and the same command run again takes over its lease and scores only the rest,
    ending with the rows of a clean run."""
    out = tmp_path / "scores"
    argv = [str(Path(sys.executable).with_name("genreflow")), "score", "--store", scored_store.store, "--model",
            TAGS, "--out", str(out), "--chunk-size", str(CHUNK_SIZE), "--workers", "2", "--json"]  # fmt: skip
    started: list[subprocess.Popen] = []

    def score(name: str) -> subprocess.Popen:
        with open(tmp_path / f"{name}.out", "w") as stdout, open(tmp_path / f"{name}.err", "w") as stderr:
            # its own session (a process group to clean up); GENREFLOW_HOME and PREFECT_API_URL: tests.services
            started.append(subprocess.Popen(argv, stdout=stdout, stderr=stderr, start_new_session=True))
        return started[-1]

    try:
        _kill_and_resume(scored_store, out, tmp_path, score)
    finally:  # whatever failed, no process of either run outlives the test
        for process in started:
            if process.poll() is None:
                process.kill()
                process.wait()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


def _kill_and_resume(scored_store: ScoredStore, out: Path, tmp_path: Path, score) -> None:
    import psutil

    killed = score("killed")
    deadline = time.monotonic() + 180
    while not _parts(out) and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    family = []
    with contextlib.suppress(psutil.NoSuchProcess):  # its fork server, resource tracker and workers
        family = [(p, p.ppid()) for p in psutil.Process(killed.pid).children(recursive=True)]
    killed.send_signal(signal.SIGKILL)  # the flow process alone: its workers are orphaned
    killed.wait()
    written = _parts(out)
    assert killed.returncode == -signal.SIGKILL, (tmp_path / "killed.err").read_text()
    assert 1 <= len(written) < SHARDS, "the kill did not land between two score files"
    workers = [p for p, parent in family if parent != killed.pid]  # forked by the fork server
    assert len(workers) >= 2

    # Orphaned Dask workers leave by themselves: each holds a pipe from its nanny's process (the one
    # killed) and exits when it closes; the fork server and resource tracker follow (all gone within
    # 2-3 s, measured on a loaded machine). One still here after 30 s is killed, and fails the test.
    deadline = time.monotonic() + 30
    while not all(_gone(p) for p, _ in family) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [p for p, _ in family if not _gone(p)]
    for process in survivors:
        process.kill()
    assert not survivors, [" ".join(p.cmdline()) for p in survivors]

    # What readers see meanwhile is whole: each `*.parquet` reads to its end; the datasets pandas and
    # pyarrow open hold one row per track, each equal to the clean run's; anything else is hidden.
    for path in out.rglob("*.parquet"):
        assert pq.read_table(path).num_rows == pq.ParquetFile(path).metadata.num_rows > 0, path
    assert all(p.name.startswith((".", "_")) for p in (out / TAGS_DIR).iterdir() if p not in written)
    partial = _assert_clean_values(out, scored_store.clean, sorted(pd.read_parquet(out)["track_id"]))
    assert len(partial) == PER_SHARD * len(written)
    dataset = ds.dataset(str(out), format="parquet", partitioning="hive").to_table()
    assert dataset.num_rows == len(set(dataset["track_id"].to_pylist())) == len(partial)
    lease = read_lease(StoreLayout(scored_store.store))
    assert lease is not None and lease.pid == killed.pid  # the dead run's: the next one has to take it over

    resumed = score("resumed")
    assert resumed.wait(timeout=300) == 0, (tmp_path / "resumed.err").read_text()
    summary = json.loads((tmp_path / "resumed.out").read_text())
    assert summary["selected"] == summary["scored"] == TRACKS - len(partial) and summary["failed"] == 0
    assert read_lease(StoreLayout(scored_store.store)) is None  # taken over, then released
    found = reliability.check_scores(str(out), scored_store.track_ids)
    reliability.record("flow SIGKILLed mid-scoring", faults={"flow process SIGKILL": 1}, runs_completed=1,
                       **found.as_counts())  # fmt: skip
    assert found == reliability.StoreCheck(0, 0, 0)
    final = _assert_clean_values(out, scored_store.clean, scored_store.track_ids)
    assert len(_parts(out)) == SHARDS
    pd.testing.assert_series_equal(final.loc[partial.index, "scored_at"], partial["scored_at"])  # kept, not redone
