"""``genreflow serve``: the deployments it builds, then the command itself as a user runs it, against
the test Prefect server: registered with their schedule, a run on demand, Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from genreflow.infra.deployments import SHUTDOWN_S

pytestmark = pytest.mark.integration
GENREFLOW = [sys.executable, "-m", "genreflow.cli"]
NAMES = {"nightly": "genreflow-nightly", "backfill": "backfill", "train": "genreflow-train", "score": "genreflow-score"}
CRON, TIMEZONE = "30 4 * * *", "Asia/Tokyo"  # no daylight saving: the next run is 04:30 JST


def _wait_for(check: Callable[[], Any], *, timeout: float, what: str, process: subprocess.Popen | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            pytest.fail(f"genreflow serve exited with {process.returncode} while waiting for {what}")
        if result := check():
            return result
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def _next_0430(after: datetime) -> datetime:
    local = after.astimezone(ZoneInfo(TIMEZONE))
    candidate = local.replace(hour=4, minute=30, second=0, microsecond=0)
    return candidate if candidate > local else candidate + timedelta(days=1)


def test_deployments_carry_their_schedule_and_json_parameters(tmp_path, settings):
    from prefect.client.orchestration import get_client

    from genreflow.infra.deployments import build_deployments, settings_parameter
    from genreflow.infra.settings import Settings

    store, sources = str(tmp_path / "store"), [str(tmp_path / "a"), str(tmp_path / "b")]
    built = {d.name: d for d in build_deployments(settings, sources=sources, store=store, cron=CRON, timezone=TIMEZONE)}
    assert {name: d.flow_name for name, d in built.items()} == NAMES
    [item] = built["nightly"].schedules
    assert (item.schedule.cron, item.schedule.timezone, item.active) == (CRON, TIMEZONE, True)
    assert all(not built[name].schedules for name in ("backfill", "train", "score"))

    runtime = {"storage_options": {}, "settings": settings_parameter(settings), "show_progress": False}
    assert settings_parameter(settings)["home"] == str(settings.home)
    assert built["nightly"].parameters == {"sources": sources, "store": store, **runtime}
    assert built["backfill"].parameters == {"source": sources[0], "store": store, **runtime}
    assert built["score"].parameters == {"store": store, **runtime}
    assert built["train"].parameters == {
        "store": store,
        "backbone": "auto",
        "model_name": "genre",
        "home": str(settings.home),
        "storage_options": {},
    }

    deployment_id = built["nightly"].apply()  # what the API keeps is JSON; the served flow validates it
    with get_client(sync_client=True) as client:
        try:
            stored = client.read_deployment(deployment_id)
        finally:
            client.delete_deployment(deployment_id)
    assert stored.parameters == built["nightly"].parameters
    assert (stored.schedules[0].schedule.cron, stored.schedules[0].schedule.timezone) == (CRON, TIMEZONE)
    assert Settings.coerce(stored.parameters["settings"]) == settings  # what the flow makes of it, `home` a Path


def test_serve_registers_runs_on_demand_and_stops_on_ctrl_c(tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    from genreflow.infra.prefect_api import ui_url_of

    source, store = tmp_path / "lib", tmp_path / "empty-store"
    source.mkdir()
    command = [*GENREFLOW, "serve", "--store", str(store), "--source", str(source), "--cron", CRON,
               "--timezone", TIMEZONE, "--workers", "1"]  # fmt: skip
    env = {**os.environ, "PREFECT_RUNNER_POLL_FREQUENCY": "2"}  # the served runner looks for runs every 2 s
    out, err = tmp_path / "serve.out", tmp_path / "serve.err"
    started = datetime.now(ZoneInfo("UTC"))
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=env, start_new_session=True)
    client = get_client(sync_client=True)
    mine: dict[str, Any] = {}
    try:
        with client:

            def registered() -> dict[str, Any]:
                found = {d.name: d for d in client.read_deployments() if d.parameters.get("store") == str(store)}
                return found if set(found) == set(NAMES) else {}

            mine = _wait_for(registered, timeout=60, what="the four deployments", process=process)
            [item] = mine["nightly"].schedules
            assert (item.schedule.cron, item.schedule.timezone, item.active) == (CRON, TIMEZONE, True)
            assert all(not mine[name].schedules for name in ("backfill", "train", "score"))

            printed = out.read_text()
            nexts = {f"{_next_0430(when):%Y-%m-%d %H:%M} JST" for when in (started, datetime.now(ZoneInfo("UTC")))}
            assert any(f"next runs: {date}" in printed for date in nexts), printed
            assert f"Prefect UI: {ui_url_of(os.environ['PREFECT_API_URL'])}\n" in printed, printed

            run = run_deployment(name="genreflow-score/score", timeout=0)  # on demand: the served process runs it
            state = _wait_for(
                lambda: (s := client.read_flow_run(run.id).state) and s.is_final() and s,
                timeout=120,
                what="the score run to finish",
                process=process,
            )
            # Failed, not Crashed: the flow ran and stopped at the empty store's registry (and `settings`
            # reached it as a Settings: a dict would have failed on `settings.dask_address` first)
            assert state.is_failed(), (state.type, state.message)
            assert str(store) in state.message and "no model named 'genre'" in state.message, state.message

        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=SHUTDOWN_S + 30)  # it pauses the schedules on the way out, or gives up
        if code == 130 and f"had not stopped {SHUTDOWN_S:g} s after Ctrl-C" in err.read_text():
            # Seen in full fresh-clone CI runs only (never alone, under load, or in a full tests/cli run):
            # Prefect's runner did not finish its shutdown. serve now exits anyway, and prints where it
            # was stuck: reported here, with those stacks, rather than hidden.
            pytest.xfail(f"Prefect's runner did not stop within {SHUTDOWN_S:g} s of Ctrl-C:\n{err.read_text()}")
        assert code == 0 and "Traceback" not in err.read_text(), err.read_text()
        assert out.read_text().rstrip().endswith("stopped serving; the nightly schedule is paused until "
                                                 "`genreflow serve` runs again")  # fmt: skip
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        with get_client(sync_client=True) as cleanup:
            for deployment in mine.values():
                cleanup.delete_deployment(deployment.id)


def test_a_bad_cron_or_timezone_is_one_line_and_exit_2_before_anything_starts(tmp_path):
    (tmp_path / "lib").mkdir()
    home = tmp_path / "home"
    env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"} | {"GENREFLOW_HOME": str(home)}
    serve = [*GENREFLOW, "serve", "--store", str(tmp_path / "store"), "--source", str(tmp_path / "lib")]
    for flags, named in ((["--cron", "0 25 * * *"], "hour '25'"), (["--timezone", "Mars/Olympus"], "Mars/Olympus")):
        done = subprocess.run([*serve, *flags], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and named in done.stderr, done.stderr
    assert not home.exists()  # no local Prefect server was started


_SERVED = """
import asyncio, sys
from genreflow.infra.deployments import until_interrupted

async def start():
    print("serving", flush=True)
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        if sys.argv[1] == "stuck":  # a clean-up that never ends, as a runner waiting on a dead API would
            await asyncio.shield(asyncio.sleep(3600))
        raise

asyncio.run(until_interrupted(start, shutdown_s=2))
print("stopped", flush=True)
"""


@pytest.mark.parametrize("clean_up", ["prompt", "stuck", "stuck, Ctrl-C again"])
def test_ctrl_c_stops_serving_even_when_the_runner_does_not_stop(clean_up):
    process = subprocess.Popen([sys.executable, "-c", _SERVED, clean_up.split(",")[0]], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert process.stdout.readline() == "serving\n"
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    if clean_up.endswith("again"):
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    waited = time.monotonic() - started
    if clean_up == "prompt":  # the runner's own shutdown ran to its end, and serve returned normally
        assert (process.returncode, out, err) == (0, "stopped\n", "")
        return
    # bounded: the stacks say where it was stuck, one line what may be left, exit 130
    assert process.returncode == 130 and out == ""
    assert "Current thread" in err and "pending asyncio task" in err and ", in start" in err, err
    when, within = ("at a second Ctrl-C", (0.5, 2)) if clean_up.endswith("again") else ("2 s after Ctrl-C", (2, 20))
    assert within[0] <= waited < within[1], waited  # the second Ctrl-C does not wait for the 2 s
    assert err.rstrip().splitlines()[-1].startswith(f"genreflow serve: Prefect's runner had not stopped {when}; ")
