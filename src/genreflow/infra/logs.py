"""Quiet by default: Prefect, distributed and TensorFlow chatter only with ``--verbose``; no telemetry."""

from __future__ import annotations

import logging
import os

NO_TELEMETRY_ENV = {"DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
QUIET_ENV = {
    "PREFECT_LOGGING_LEVEL": "WARNING",
    # Prefect's console handler prints a task's or flow's exception with its traceback before the CLI
    # prints its one line; the API handler still sends them to the server, so the UI keeps them.
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL",
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "DASK_LOGGING__DISTRIBUTED": "warning",
}


def configure_environment(*, verbose: bool = False) -> None:
    """Set telemetry and log levels before Prefect or Dask is imported (workers inherit them)."""
    os.environ.update(NO_TELEMETRY_ENV)  # also with --verbose: there is no network to report to
    if verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
        return
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    quiet_loggers()


def quiet_loggers() -> None:
    """Lower chatty libraries to warnings; call again after Prefect configures logging on import."""
    for name in ("distributed", "prefect", "numba", "botocore", "s3fs", "urllib3", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # A worker that loaded TensorFlow can take over 4 s to exit when a run ends; the nanny then kills it
    # and warns. Harmless: every result is back by then.
    logging.getLogger("distributed.nanny").setLevel(logging.ERROR)
    # TensorFlow warns about tf.function retracing when evaluation batches differ in size: expected here.
    for name in ("tensorflow", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)
