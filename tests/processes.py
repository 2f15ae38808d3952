"""The test session's own processes, found the way a person would with ps: for tests that kill them."""

from __future__ import annotations

from typing import Any


def worker_processes() -> list[Any]:
    """This test process's Dask worker processes (forked from the fork server, or spawned)."""
    import psutil

    me = psutil.Process()
    workers = []
    for process in me.children(recursive=True):
        command = " ".join(process.cmdline())
        forkserver = "forkserver import main" in command and process.ppid() == me.pid
        if "multiprocessing" in command and "resource_tracker" not in command and not forkserver:
            workers.append(process)
    return workers
