"""Real services for the tests of flows, benchmarks and commands: a Prefect server and moto S3 on loopback.

The Prefect server starts before Prefect is imported (its settings are read at import), through the
same code the CLI uses; Dask worker processes inherit ``PREFECT_API_URL`` and the AWS variables.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from genreflow.infra.logs import configure_environment
from genreflow.infra.prefect_api import ensure_prefect_api, stop_local_server

_SESSION = "GENREFLOW_TEST_SESSION_HOME"  # set by the test session for the processes it starts
if os.environ.get(_SESSION):
    # A process the session started (a worker that unpickled a test's function, a subprocess): it
    # uses the session's server. Starting its own would leak it, since such processes often end
    # without running atexit handlers (multiprocessing children, SIGKILLed ones).
    HOME = Path(os.environ[_SESSION])
    PREFECT_API_URL = os.environ["PREFECT_API_URL"]
else:
    HOME = Path(tempfile.mkdtemp(prefix="genreflow-test-home-"))
    os.environ.pop("PREFECT_API_URL", None)
    os.environ["GENREFLOW_HOME"] = str(HOME)
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    configure_environment()
    PREFECT_API_URL = ensure_prefect_api(HOME)
    os.environ[_SESSION] = str(HOME)
    atexit.register(lambda: (stop_local_server(HOME), shutil.rmtree(HOME, ignore_errors=True)))


@pytest.fixture(scope="session")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="session")
def settings():
    from genreflow.infra.settings import Settings

    return Settings(workers=2, home=HOME, in_process_tracks=0)  # small test catalogues still meet real workers
