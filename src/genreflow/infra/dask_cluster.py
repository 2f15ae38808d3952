"""The Dask side: a task runner on a local process cluster, an existing scheduler, or a SLURM or
Kubernetes cluster (``infra/clusters.py`` builds its arguments), and the address of its dashboard."""

from __future__ import annotations

import logging
import multiprocessing
import os
from typing import Any
from urllib.parse import urlsplit

from .settings import Settings

logger = logging.getLogger(__name__)

# Imported once by the fork server that local workers are forked from (instead of by each worker after
# it starts): Dask, Prefect, numpy, zarr, soundfile and the shard code; scipy's FFT for the spectrograms.
# TensorFlow is left out: a scoring worker imports it itself, after the fork.
WORKER_PRELOAD = ("distributed", "genreflow.tasks.ingest", "scipy.fft", "scipy.sparse")
_forkserver_prefect_env: dict[str, str] | None = None  # the PREFECT_* variables the fork server started with


def task_runner(settings: Settings) -> Any:
    """A ``DaskTaskRunner`` for ``settings``; nothing starts until it is used.

    With ``dask_address`` it connects to that scheduler, over TLS for a ``tls://`` one (the
    ``dask_tls_*`` files: ``clusters.dask_security``); its workers need ``PREFECT_API_URL`` and the
    S3 variables in their own environment. With ``cluster`` ``slurm`` or ``kubernetes`` it starts
    the cluster ``cluster_config`` describes, whose workers get those variables from this process's
    environment as it is now (see ``infra/clusters.py``, also for where that puts the secrets).
    Otherwise it starts ``workers`` local worker processes with one thread each: the shard function
    overlaps decoding and compute itself, and processes keep numpy/zarr work off one GIL. Local
    workers inherit this process's environment. Their dashboard listens on a free loopback port
    (:func:`dashboard_link`).
    """
    from prefect_dask import DaskTaskRunner

    from .clusters import runner_kwargs, worker_env

    kwargs = runner_kwargs(settings)
    if settings.cluster != "local":
        if settings.cluster == "slurm":
            _drop_job_script_logs()
        _warn_unreachable_api(settings.cluster, worker_env(_config_env(settings)))
    return DaskTaskRunner(**kwargs)


def start_local_workers_early(settings: Settings) -> None:
    """Start the fork server that local worker processes are forked from, if ``settings`` describe
    local workers: it imports :data:`WORKER_PRELOAD` on the other core while this process imports
    Prefect and plans the run, and each worker then starts in a fraction of a second instead of
    importing them itself once the cluster starts (2.5 s of a run on two cores, measured).

    Call it once the workers' environment is set (the Prefect API, the log levels), and again just
    before the workers start (the flows do): the fork server keeps the environment it started with,
    and its workers get the Prefect API and S3 variables as they are now on top of it
    (``clusters.local_runner_kwargs``). Prefect reads its settings on import, though: when the
    ``PREFECT_*`` variables have changed since the fork server started (a process that talks to
    another server now), workers are spawned afresh instead. Where fork servers do not exist
    (Windows), workers are always spawned.
    """
    global _forkserver_prefect_env
    if not _local_processes(settings):
        return
    import dask

    # Dask's nannies set MALLOC_TRIM_THRESHOLD_=65536, which also pins glibc's mmap threshold: every
    # multi-MB array of a track is then mmapped and faulted in afresh, costing ~40 % of the shard
    # time. glibc's own adaptive thresholds keep worker memory just as flat (see `bench ingest`).
    # (Remote workers get the same through their environment: `clusters.NANNY_ENV`.)
    dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None})
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return
    prefect_env = {key: value for key, value in os.environ.items() if key.startswith("PREFECT_")}
    if _forkserver_prefect_env is None:
        _start_forkserver(dask.config.get("distributed.nanny.pre-spawn-environ"))
        _forkserver_prefect_env = prefect_env
    method = "forkserver" if prefect_env == _forkserver_prefect_env else "spawn"
    dask.config.set({"distributed.worker.multiprocessing-method": method})


def _start_forkserver(pre_spawn_environ: dict[str, Any]) -> None:
    """Start the fork server with :data:`WORKER_PRELOAD`, and with what a nanny sets before spawning
    a worker (one BLAS thread: ``OMP_NUM_THREADS=1``, ...) in its environment, where numpy is imported."""
    from multiprocessing import forkserver

    pre_spawn = {key: str(value) for key, value in pre_spawn_environ.items() if value is not None}
    saved = {key: os.environ.get(key) for key in pre_spawn}
    os.environ.update(pre_spawn)
    try:
        multiprocessing.set_forkserver_preload(list(WORKER_PRELOAD))
        forkserver.ensure_running()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _local_processes(settings: Settings) -> bool:
    return settings.cluster == "local" and not settings.dask_address


def dashboard_link(runner: Any) -> str | None:
    """The Dask dashboard's address for a ``DaskTaskRunner`` inside its ``with`` block, or None when
    its scheduler serves none.

    prefect_dask starts the cluster and its client on first use (``runner.client``), not on
    ``__enter__``; this is that first use, so the workers start here rather than at the first submit.
    """
    client = runner.client
    try:
        link = client.dashboard_link
    except (KeyError, AttributeError):  # a scheduler started without a dashboard
        return None
    return link or None


class _NoJobScripts(logging.Filter):
    """dask-jobqueue logs each job script at DEBUG before ``sbatch``; ours export the workers' credentials."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("writing job script")


def _drop_job_script_logs() -> None:
    jobqueue = logging.getLogger("dask_jobqueue.core")
    if not any(isinstance(f, _NoJobScripts) for f in jobqueue.filters):
        jobqueue.addFilter(_NoJobScripts())


def _config_env(settings: Settings) -> dict[str, str]:
    from .clusters import load_cluster_config

    return dict(load_cluster_config(settings.cluster_config).env) if settings.cluster_config else {}


def _warn_unreachable_api(cluster: str, env: dict[str, str]) -> None:
    """Remote workers report task states to ``PREFECT_API_URL``: a loopback one (the local server
    genreflow starts) is this machine's only. Named by host, never the whole URL."""
    url = env.get("PREFECT_API_URL")
    host = urlsplit(url).hostname if url else None
    if host is None or host in ("localhost", "127.0.0.1", "::1") or host.startswith("127."):
        where = f"is on {host}" if host else "is not set"
        logger.warning(
            "--cluster %s: the workers' PREFECT_API_URL %s, which they cannot reach; set PREFECT_API_URL "
            "(or [env] PREFECT_API_URL in the cluster config) to a Prefect server they can reach",
            cluster,
            where,
        )
