"""Which task failures Prefect tries again (``tasks.retries.transient``), on the real engine: a hiccup
is retried, while a full disk, a read-only filesystem and genreflow's own errors fail at once."""

from __future__ import annotations

import errno

import pytest

from genreflow.pipeline.errors import DecodeError

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("error", "attempts"),
    [
        (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), 3),
        (TimeoutError("read timed out"), 3),
        (OSError(errno.ENOSPC, "No space left on device", "/store/features.zarr/c/0"), 1),
        (OSError(errno.EROFS, "Read-only file system", "/store/manifest"), 1),
        (PermissionError(errno.EACCES, "Permission denied", "/store"), 1),
        (DecodeError("x.wav: not audio"), 1),
    ],
    ids=["reset", "timeout", "disk-full", "read-only", "permission", "genreflow-error"],
)
def test_only_failures_a_retry_can_pass_are_retried(settings, error, attempts):
    from prefect import flow, task

    from genreflow.tasks.retries import transient

    calls = []

    @task(retries=2, retry_delay_seconds=0, retry_condition_fn=transient)
    def fails() -> None:
        calls.append(1)
        raise error

    @flow
    def night() -> None:
        fails()

    with pytest.raises(type(error)):
        night()
    assert len(calls) == attempts
