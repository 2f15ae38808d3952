"""The store lease between real processes: on local disk and on moto's S3 server on loopback.

Holders are separate Python processes (``subprocess``), killed, stopped and resumed with real signals;
nothing about the filesystem or S3 is mocked.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from genreflow.pipeline.errors import LeaseHeld
from genreflow.pipeline.store.layout import StoreLayout
from genreflow.pipeline.store.lease import LeaseInfo, _process_scope, acquire_lease, break_lease, read_lease
from genreflow.pipeline.store.parquet import write_bytes_atomic

AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}

# A holder: takes the lease, says so, then holds it until told on stdin ("stdin" mode, then releases
# `release_after` s later) or for `hold_s` seconds unless it is lost first ("watch" mode).
HOLDER = """
import json, os, sys, time
from genreflow.pipeline.store.layout import StoreLayout
from genreflow.pipeline.store.lease import acquire_lease
args = json.loads(sys.argv[1])
layout = StoreLayout(args["root"], args["options"])
with acquire_lease(layout, holder=args["holder"], ttl_s=args["ttl_s"]) as lease:
    print(json.dumps({"token": lease.info.token, "pid": os.getpid()}), flush=True)
    if args["mode"] == "stdin":
        sys.stdin.readline()
        time.sleep(args["release_after"])
    else:
        end = time.monotonic() + args["hold_s"]
        while time.monotonic() < end and not lease.lost:
            time.sleep(0.05)
    print(json.dumps({"lost": lease.lost}), flush=True)
"""

# A racer: says it is ready, reads the start time on stdin, then in each round (one slot of
# `slot_s` seconds) tries the lease once with wait_s=0 at the same instant as the others; a winner
# holds it for `hold_s` seconds of the slot and releases it.
RACER = """
import json, os, sys, time
from genreflow.pipeline.errors import LeaseHeld
from genreflow.pipeline.store.layout import StoreLayout
from genreflow.pipeline.store.lease import acquire_lease
args = json.loads(sys.argv[1])
layout = StoreLayout(args["root"], args["options"])
# warm up (imports, S3 session, the bucket's check of conditional writes) on a store of its own
acquire_lease(StoreLayout(f"{args['root']}-warm-{os.getpid()}", args["options"]), holder="warm-up").release()
print("ready", flush=True)
go = float(sys.stdin.readline())
results = []
for i in range(args["rounds"]):
    start = go + i * args["slot_s"]
    time.sleep(max(0.0, start - time.time()))
    try:
        lease = acquire_lease(layout, holder=f"racer {os.getpid()}", ttl_s=30)
    except LeaseHeld:
        results.append([i, "held", None, time.time() - start])
        continue
    results.append([i, "won", lease.took_over.token if lease.took_over else None, time.time() - start])
    time.sleep(max(0.0, start + args["hold_s"] - time.time()))
    lease.release()
print(json.dumps(results), flush=True)
"""


@pytest.fixture(scope="module")
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    with pytest.MonkeyPatch.context() as patch:
        for name, value in AWS.items():
            patch.setenv(name, value)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        yield f"http://127.0.0.1:{port}"
        server.stop()


@pytest.fixture
def local_store(tmp_path: Path) -> StoreLayout:
    return StoreLayout(str(tmp_path / "store"))


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
def store(request, tmp_path: Path) -> StoreLayout:
    return StoreLayout(str(tmp_path / "store")) if request.param == "local" else _s3_store(request)


@pytest.fixture
def spawn(tmp_path: Path):
    """Start Python processes running ``code`` with JSON ``args``; all are killed at teardown."""
    started: list[subprocess.Popen] = []

    def start(code: str, **args) -> subprocess.Popen:
        log = open(tmp_path / f"stderr-{len(started)}.txt", "w+")  # noqa: SIM115  closed with the process
        process = subprocess.Popen(
            [sys.executable, "-c", code, json.dumps(args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, **AWS},
        )
        process.log = log
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)
            process.kill()
        process.wait()
        process.log.close()


def _line(process: subprocess.Popen, timeout_s: float = 15.0):
    """The next JSON line the process prints (fails, with its stderr, if none comes in time)."""
    ready, _, _ = select.select([process.stdout], [], [], timeout_s)
    line = process.stdout.readline() if ready else ""
    if not line:
        process.log.seek(0)
        raise AssertionError(f"no line from process {process.pid} (exit {process.poll()}): {process.log.read()}")
    return json.loads(line)


def _holder(spawn, layout: StoreLayout, **args) -> tuple[subprocess.Popen, str]:
    process = spawn(HOLDER, root=layout.root, options=dict(layout.storage_options), holder="ingest run-1", **args)
    return process, _line(process)["token"]


def test_second_run_is_refused_naming_the_holder_then_waits_for_it(store, spawn):
    process, token = _holder(spawn, store, ttl_s=20, mode="stdin", release_after=1.0)

    with pytest.raises(LeaseHeld) as refused:
        acquire_lease(store, holder="score run-2", wait_s=0)
    message = str(refused.value)
    assert "\n" not in message
    assert f"pid {process.pid} on {socket.gethostname()}" in message
    assert "'ingest run-1'" in message and "since " in message and "expiring " in message
    assert "--wait SECONDS" in message
    assert refused.value.holder.pid == process.pid and refused.value.holder.token == token
    again = pickle.loads(pickle.dumps(refused.value))
    assert str(again) == message and again.holder == refused.value.holder

    process.stdin.write("release\n")
    process.stdin.flush()
    started = time.monotonic()
    with acquire_lease(store, holder="score run-2", wait_s=10) as lease:
        waited = time.monotonic() - started
        assert 0.5 < waited < 6, waited
        assert lease.took_over is None and not lease.lost
        assert read_lease(store).token == lease.info.token
    assert process.wait(timeout=10) == 0
    assert read_lease(store) is None


def test_lease_of_a_killed_holder_is_taken_over_at_once(store, spawn):
    process, token = _holder(spawn, store, ttl_s=60, mode="watch", hold_s=60)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert read_lease(store).token == token  # the dead run's lock is still there, valid for a minute

    started = time.monotonic()
    with acquire_lease(store, holder="ingest run-2", wait_s=0) as lease:
        assert time.monotonic() - started < 3
        assert lease.took_over is not None
        assert (lease.took_over.pid, lease.took_over.token) == (process.pid, token)
        assert read_lease(store).token == lease.info.token
    assert read_lease(store) is None


def test_lease_of_a_live_or_foreign_holder_is_not_taken_early(local_store):
    now = datetime.now(UTC)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    live_pid = os.getppid()
    for host, pid in [("elsewhere", int(dead.stdout)), (socket.gethostname(), live_pid)]:
        info = LeaseInfo("ingest other", host, pid, now, now + timedelta(seconds=30), 30.0, "other", _process_scope())
        write_bytes_atomic(info.to_json(), local_store.lease)
        with pytest.raises(LeaseHeld):
            acquire_lease(local_store, holder="ingest mine", wait_s=0)
    assert break_lease(local_store).pid == live_pid
    assert read_lease(local_store) is None


@pytest.mark.parametrize("where", ["local", pytest.param("s3", marks=pytest.mark.integration)])
def test_stopped_holder_loses_its_lease_after_expiry_and_stops(where, request, spawn):
    store = request.getfixturevalue("local_store") if where == "local" else _s3_store(request)
    process, token = _holder(spawn, store, ttl_s=2, mode="watch", hold_s=30)
    os.kill(process.pid, signal.SIGSTOP)  # alive (not taken over as dead), but no longer renewing
    started = time.monotonic()
    lease = acquire_lease(store, holder="ingest run-2", wait_s=6, poll_s=0.2)
    try:
        assert 1.0 < time.monotonic() - started < 5.5
        assert lease.took_over is not None and lease.took_over.token == token

        os.kill(process.pid, signal.SIGCONT)
        assert _line(process, 5) == {"lost": True}
        assert process.wait(timeout=10) == 0
        assert read_lease(store).token == lease.info.token  # neither renewed over nor released by the old holder
        assert not lease.lost
    finally:
        lease.release()


def test_holder_renews_its_lease_while_it_runs(local_store, spawn):
    process, token = _holder(spawn, local_store, ttl_s=2, mode="watch", hold_s=5)
    expiries = set()
    end = time.monotonic() + 4.5
    while time.monotonic() < end:
        with pytest.raises(LeaseHeld):
            acquire_lease(local_store, holder="ingest run-2", wait_s=0).release()
        current = read_lease(local_store)
        assert current.token == token and not current.expired()
        expiries.add(current.expires_at)
        time.sleep(0.4)
    assert len(expiries) >= 4  # renewed every ttl/3
    assert _line(process, 5) == {"lost": False}
    assert process.wait(timeout=5) == 0
    assert read_lease(local_store) is None


def test_racing_runs_exactly_one_wins_each_free_or_expired_lease(store, spawn):
    rounds, slot_s, hold_s = 6, 1.0, 0.5
    args = dict(root=store.root, options=dict(store.storage_options), rounds=rounds, slot_s=slot_s, hold_s=hold_s)
    racers = [spawn(RACER, **args) for _ in range(6)]
    for racer in racers:
        assert select.select([racer.stdout], [], [], 30)[0] and racer.stdout.readline() == "ready\n"
    go = time.time() + 0.5
    for racer in racers:
        racer.stdin.write(f"{go}\n")
        racer.stdin.flush()
    # odd rounds start from the expired lease of a dead run on another host
    for i in range(1, rounds, 2):
        time.sleep(max(0.0, go + i * slot_s - 0.25 - time.time()))
        past = datetime.now(UTC) - timedelta(seconds=5)
        stale = LeaseInfo("ingest dead", "elsewhere", 1, past, past, 1.0, f"stale-{i}")
        write_bytes_atomic(stale.to_json(), store.lease, storage_options=store.storage_options)

    outcomes = [row for racer in racers for row in _line(racer, rounds * slot_s + 20)]
    for i in range(rounds):
        winners = [row for row in outcomes if row[0] == i and row[1] == "won"]
        late = max(row[3] for row in outcomes if row[0] == i)
        assert len(winners) == 1, f"round {i}: {len(winners)} winners (slowest attempt {late:.2f} s into it)"
        assert winners[0][2] == (f"stale-{i}" if i % 2 else None), f"round {i}: {winners}"
    assert read_lease(store) is None


def _s3_store(request) -> StoreLayout:
    import s3fs

    endpoint = request.getfixturevalue("moto_endpoint")
    bucket = f"lease-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(endpoint_url=endpoint).mkdir(bucket)
    return StoreLayout(f"s3://{bucket}/store", {"endpoint_url": endpoint})
