"""The Dask side: a task runner on a local process cluster, or on an existing scheduler."""

from __future__ import annotations

import logging
from typing import Any

from .settings import Settings


def task_runner(settings: Settings) -> Any:
    """A ``DaskTaskRunner`` for ``settings``.

    With ``dask_address`` it connects to that scheduler (its workers need ``PREFECT_API_URL`` and the
    S3 variables in their own environment). Otherwise it starts ``workers`` local worker processes
    with one thread each: the shard function overlaps decoding and compute itself, and processes
    keep numpy/zarr work off one GIL. Local workers inherit this process's environment.
    """
    import dask
    from prefect_dask import DaskTaskRunner

    if settings.dask_address:
        return DaskTaskRunner(address=settings.dask_address)
    # Dask's nannies set MALLOC_TRIM_THRESHOLD_=65536, which also pins glibc's mmap threshold: every
    # multi-MB array of a track is then mmapped and faulted in afresh, costing ~40 % of the shard
    # time. glibc's own adaptive thresholds keep worker memory just as flat (see `bench ingest`).
    dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None})
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={
            "n_workers": settings.workers,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": None,
            "silence_logs": logging.DEBUG if settings.verbose else logging.ERROR,
        },
    )
