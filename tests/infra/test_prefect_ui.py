"""The local Prefect server's UI: it is told the server's own API address, shows the server's runs in
a real browser, and ``genreflow server status`` prints where it is.

A server of its own, started by genreflow's code in a temporary home (not the session server of
``tests/services.py``), so these tests check how :func:`_start_server` starts it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from genreflow.infra.prefect_api import ensure_prefect_api, prefect_ui_url, stop_local_server

pytestmark = pytest.mark.integration

HTTP_TIMEOUT_S = 10
CHROMIUM_TIMEOUT_S = 90


@pytest.fixture(scope="module")
def local_server(tmp_path_factory: pytest.TempPathFactory):
    """(home, API URL) of a server started in a temporary home; stopped afterwards."""
    home = tmp_path_factory.mktemp("genreflow-home")
    # ensure_prefect_api returns a configured PREFECT_API_URL (the test session sets one) without
    # starting anything, and sets the variable itself once it has started a server: restore it after.
    saved = os.environ.pop("PREFECT_API_URL", None)
    try:
        url = ensure_prefect_api(home)
        yield home, url
    finally:
        stop_local_server(home)
        if saved is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = saved


def _get_json(url: str) -> dict:
    return _json_of(urllib.request.Request(url))


def _post_json(url: str, payload: dict) -> dict:
    return _json_of(urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    ))  # fmt: skip


def _json_of(request: urllib.request.Request, *, attempts: int = 10) -> dict:
    """The JSON answer, trying again while the server answers 503: a freshly started Prefect server on
    a busy 2-core machine answered one (its database still busy) in a CI run, a moment later it did not."""
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            if error.code != 503 or attempt == attempts - 1:
                raise
            time.sleep(1.0)
    raise AssertionError("unreachable")


def test_ui_settings_name_the_servers_own_api(local_server):
    _, url = local_server
    ui = url.removesuffix("/api")

    settings = _get_json(f"{ui}/ui-settings")

    assert settings["api_url"] == url


def test_the_state_file_and_prefect_ui_url_give_the_ui_address(local_server, monkeypatch):
    home, url = local_server
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    ui = url.removesuffix("/api")

    assert json.loads((home / "prefect-server.json").read_text())["ui"] == ui
    assert prefect_ui_url(home) == ui
    monkeypatch.setenv("PREFECT_API_URL", "http://prefect.example:4200/api")
    assert prefect_ui_url(home) == "http://prefect.example:4200"


def test_server_status_prints_the_api_and_ui_addresses(local_server, monkeypatch, capsys):
    from genreflow.cli import main

    home, url = local_server
    monkeypatch.setenv("GENREFLOW_HOME", str(home))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)

    assert main(["server", "status"]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert f"api: {url}" in lines
    assert f"ui: {url.removesuffix('/api')}" in lines


def test_the_ui_shows_a_run_of_the_server_in_headless_chromium(local_server, tmp_path: Path):
    """Both UIs: V2 (the default) lists the run; V1's run list is a virtual scroller that a headless
    dump never fills, so V1 is checked on the run's own page."""
    chromium = shutil.which("chromium")
    if not chromium:
        pytest.skip("chromium not installed: apt-get install chromium")
    _, url = local_server
    ui = url.removesuffix("/api")
    settings = _get_json(f"{ui}/ui-settings")
    flow = _post_json(f"{url}/flows/", {"name": "genreflow-ui-check"})
    name = f"ui-check-{uuid.uuid4().hex[:8]}"
    run = _post_json(f"{url}/flow_runs/", {"flow_id": flow["id"], "name": name, "state": {"type": "COMPLETED"}})

    pages = {
        "v2 runs": f"{ui}{settings['v2_base_url'].rstrip('/')}/runs",
        "v1 flow run": f"{ui}{settings['v1_base_url'].rstrip('/')}/runs/flow-run/{run['id']}",
    }
    for which, page in pages.items():
        dom = _render(chromium, page, tmp_path / which.replace(" ", "-"))
        assert "Can't connect to Server API" not in dom, which
        assert name in dom, f"{which}: {page} does not show the run {name}"


def _render(chromium: str, page: str, profile: Path) -> str:
    """The DOM of ``page`` after its scripts ran (15 s of virtual time), from a fresh headless profile."""
    result = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=15000",
            "--dump-dom",
            page,
        ],
        capture_output=True,
        text=True,
        timeout=CHROMIUM_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout
