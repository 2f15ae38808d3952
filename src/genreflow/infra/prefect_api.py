"""The Prefect API: an existing server (``PREFECT_API_URL``) or a local one started and reused.

The local server runs detached with its own ``PREFECT_HOME`` under genreflow's home and its API and
UI addresses in ``prefect-server.json``, so later CLI calls reuse it instead of paying its start-up
again, and Dask workers report to it rather than each starting a temporary server of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

STARTUP_TIMEOUT_S = 90.0


def ensure_prefect_api(home: Path) -> str:
    """Return a healthy API URL, starting a local server when none is configured or running."""
    configured = os.environ.get("PREFECT_API_URL")
    if configured:
        return configured
    state_file = home / "prefect-server.json"
    state = _read_state(state_file)
    url = state["url"] if state and is_healthy(state["url"]) else _start_server(home, state_file)
    os.environ["PREFECT_API_URL"] = url
    return url


def stop_local_server(home: Path) -> bool:
    """Stop the server :func:`ensure_prefect_api` started; False when none was running."""
    state_file = home / "prefect-server.json"
    state = _read_state(state_file)
    if not state:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(state["pid"], signal.SIGTERM)
    state_file.unlink(missing_ok=True)
    return True


def local_server_url(home: Path) -> str | None:
    """URL of the running local server, if any."""
    state = _read_state(home / "prefect-server.json")
    return state["url"] if state and is_healthy(state["url"]) else None


def prefect_ui_url(home: Path) -> str | None:
    """Address of the Prefect UI: the configured ``PREFECT_API_URL``'s, else the running local server's."""
    configured = os.environ.get("PREFECT_API_URL")
    return ui_url_of(configured) if configured else local_server_ui_url(home)


def local_server_ui_url(home: Path) -> str | None:
    """Address of the running local server's UI, if any."""
    state = _read_state(home / "prefect-server.json")
    if not state or not is_healthy(state["url"]):
        return None
    return state.get("ui") or ui_url_of(state["url"])  # a state file written before "ui" was kept


def ui_url_of(api_url: str) -> str:
    """A Prefect server's UI address from its API URL: ``http://host:port/api`` -> ``http://host:port``."""
    return api_url.rstrip("/").removesuffix("/api")


def is_healthy(url: str, *, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


def _start_server(home: Path, state_file: Path) -> str:
    home.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    ui = ui_url_of(url)
    # The UI asks ``/ui-settings`` where the API is. Unless told, the server answers PREFECT_API_URL or
    # else its default port (4200), not the ``--port`` it runs on, and the UI cannot connect. This name
    # wins over its older alias PREFECT_UI_API_URL.
    env = {**os.environ, "PREFECT_HOME": str(home / "prefect"), "PREFECT_SERVER_UI_API_URL": url}
    log = open(home / "prefect-server.log", "ab")  # noqa: SIM115 - handed to the child process
    process = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the local Prefect server exited at start; see {home / 'prefect-server.log'}")
        if is_healthy(url):
            state_file.write_text(json.dumps({"url": url, "ui": ui, "pid": process.pid}))
            return url
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGTERM)
    raise RuntimeError(f"the local Prefect server did not answer in {STARTUP_TIMEOUT_S:.0f} s")


def _read_state(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
