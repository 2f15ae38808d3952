"""Which Dask cluster a run's workers join: local processes, SLURM jobs or Kubernetes pods.

Each ``*_runner_kwargs`` function returns the keyword arguments of ``prefect_dask.DaskTaskRunner``
(``cluster_class`` as a dotted path, ``cluster_kwargs``, and ``adapt_kwargs`` where the cluster
scales itself) and starts nothing; ``infra/dask_cluster.py:task_runner`` builds the runner from them.
SLURM goes through ``dask-jobqueue`` (extra ``genreflow[slurm]``), Kubernetes through the
``dask-kubernetes`` operator (extra ``genreflow[kubernetes]``); both are imported only when used.

The cluster is described by a TOML or YAML file (``--cluster-config``, env ``GENREFLOW_CLUSTER_CONFIG``)
with up to three tables; any other key is refused, naming the file and the key::

    # cluster.toml
    [slurm]                         # --cluster slurm: one sbatch job per `jobs`
    partition = "cpu"               # sbatch -p (jobqueue's `queue`; that name is accepted too)
    account = "audio"               # sbatch -A
    cores = 16                      # per job (required)
    memory = "64GiB"                # per job (required); split evenly between its worker processes
    walltime = "04:00:00"
    processes = 16                  # worker processes per job; default `cores`: one thread each, as locally
    jobs = 4                        # jobs kept running while the run lasts (resubmitted if one ends)
    maximum_jobs = 8                # default `jobs`; more: scale between the two with the queue of tasks
    job_script_prologue = ["module load ffmpeg", "source /shared/genreflow/.venv/bin/activate"]
    job_extra_directives = ["--qos=normal"]
    # also: job_name, python, interface, local_directory, log_directory, job_directives_skip,
    # worker_extra_args, job_cpu, job_mem, death_timeout, shebang, scheduler_options (a table)

    [kubernetes]                    # --cluster kubernetes: a DaskCluster resource for the operator
    image = "ghcr.io/acme/genreflow:0.1.0"  # required: an image with genreflow installed
    namespace = "audio"             # default: the current context's namespace
    name = "genreflow"              # prefix; each run's cluster is `<name>-<8 hex>`
    workers = 8                     # worker pods
    cores = 2                       # CPU request per pod (Kubernetes quantity: 2, "500m")
    memory = "8Gi"                  # memory request and limit per pod (Kubernetes quantity)
    threads = 1                     # threads per worker pod (one process each)
    # also: resources (a table of requests/limits, instead of cores/memory), scheduler_resources,
    # scheduler_service_type, idle_timeout, resource_timeout, shutdown_on_close

    [env]                           # the workers' environment, over what is taken from this process's
    PREFECT_API_URL = "http://prefect.internal:4200/api"

The workers' environment (:func:`worker_env`) carries ``PREFECT_API_URL`` (also ``PREFECT_API_KEY``
and ``PREFECT_API_AUTH_STRING`` when set) and the S3 variables (``GENREFLOW_S3_ENDPOINT_URL``, or
``--s3-endpoint-url``; ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
``AWS_DEFAULT_REGION``) from the submitting process, then ``[env]`` over them, then telemetry off
(``DO_NOT_TRACK=1``, ``PREFECT_SERVER_ANALYTICS_ENABLED=false``), and it keeps the local workers'
glibc fix: the workers' nannies do not set ``MALLOC_TRIM_THRESHOLD_`` (see ``task_runner``).

**Secrets.** genreflow never logs this environment. But it is how the workers get their
credentials, so it is stored where the scheduler system keeps a job's definition:

- SLURM: dask-jobqueue passes the environment as ``export NAME=value`` lines of each job script.
  The script is written to a temporary file for ``sbatch`` (removed after submission), and
  slurmctld keeps a copy for the job's life (``scontrol write batch_script JOBID`` shows it to the
  job's owner and to administrators). dask-jobqueue's own DEBUG log of each script is dropped.
- Kubernetes: the values sit in the DaskCluster resource and its pods' specs, readable by whoever may
  read those objects in the namespace.

Where that is too wide, leave the credentials out of this process's environment and let the
workers find their own (an instance role, a node's ``~/.aws``, or the image).

**TLS** (:func:`dask_security`). ``--dask-tls-ca-file``, ``--dask-tls-cert`` and ``--dask-tls-key``
(env ``GENREFLOW_DASK_TLS_CA_FILE``, ``..._CERT``, ``..._KEY``; the key may be omitted when the
certificate file holds it) encrypt and authenticate Dask's traffic both ways (the scheduler requires
a certificate its CA signed). With ``--dask-address tls://HOST:PORT`` they are this process's client
certificate; with ``--cluster slurm`` the scheduler started here and the workers in the jobs use the
same files, so they must be readable at the same paths on the compute nodes. Local workers talk over
loopback only and stay on plain TCP: the files are not used for them. The Kubernetes operator's pods
would need the certificates mounted: TLS is refused for ``--cluster kubernetes``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import ssl
import tomllib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genreflow.pipeline.errors import ParameterError

from .logs import NO_TELEMETRY_ENV
from .settings import ENV, Settings

if TYPE_CHECKING:
    from distributed import Security

# Forwarded from the submitting process to the workers when set there.
FORWARDED_ENV = (
    "PREFECT_API_URL",
    "PREFECT_API_KEY",
    "PREFECT_API_AUTH_STRING",
    "GENREFLOW_S3_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
)
# A remote worker's nanny reads its own Dask config: this variable drops MALLOC_TRIM_THRESHOLD_ from
# what it sets before spawning the worker (``distributed.nanny.pre-spawn-environ``; None = unset), as
# ``task_runner`` does in this process for local workers. The other defaults (OMP_NUM_THREADS=1, ...) stay.
NANNY_ENV = {"DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON": "{'MALLOC_TRIM_THRESHOLD_': None}"}

# The extra each cluster needs: (module, distribution, extra).
EXTRAS = {
    "slurm": ("dask_jobqueue", "dask-jobqueue", "slurm"),
    "kubernetes": ("dask_kubernetes", "dask-kubernetes", "kubernetes"),
}

_TABLE, _LIST = dict, list
SLURM_KEYS: dict[str, type | tuple[type, ...]] = {
    "partition": str,
    "queue": str,
    "account": str,
    "cores": int,
    "memory": str,
    "walltime": str,
    "processes": int,
    "jobs": int,
    "maximum_jobs": int,
    "job_name": str,
    "python": str,
    "interface": str,
    "local_directory": str,
    "log_directory": str,
    "job_script_prologue": _LIST,
    "job_extra_directives": _LIST,
    "job_directives_skip": _LIST,
    "worker_extra_args": _LIST,
    "job_cpu": int,
    "job_mem": str,
    "death_timeout": (int, float),
    "shebang": str,
    "scheduler_options": _TABLE,
}
KUBERNETES_KEYS: dict[str, type | tuple[type, ...]] = {
    "image": str,
    "namespace": str,
    "name": str,
    "workers": int,
    "cores": (int, float, str),
    "memory": str,
    "threads": int,
    "resources": _TABLE,
    "scheduler_resources": _TABLE,
    "scheduler_service_type": str,
    "idle_timeout": int,
    "resource_timeout": int,
    "shutdown_on_close": bool,
}
SECTIONS = {"slurm": SLURM_KEYS, "kubernetes": KUBERNETES_KEYS, "env": None}
_POSITIVE = {"slurm.cores", "slurm.processes", "slurm.jobs", "slurm.maximum_jobs", "slurm.job_cpu"} | {
    "kubernetes.workers",
    "kubernetes.threads",
}
# The Settings fields of the TLS files, and the roles a SLURM cluster gives them (its scheduler runs here).
TLS_FILES = ("dask_tls_ca_file", "dask_tls_cert", "dask_tls_key")
CLIENT_ROLE, ALL_ROLES = ("client",), ("client", "scheduler", "worker")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_K8S_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?")


@dataclass(frozen=True)
class ClusterConfig:
    """A parsed, checked cluster file: its ``[slurm]``, ``[kubernetes]`` and ``[env]`` tables."""

    source: str = "cluster config"
    slurm: Mapping[str, Any] = field(default_factory=dict)
    kubernetes: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)


def load_cluster_config(path: Path | str) -> ClusterConfig:
    """Read and check a ``.toml``, ``.yaml`` or ``.yml`` cluster file (see the module docstring)."""
    path = Path(path)
    kind = {".toml": "TOML", ".yaml": "YAML", ".yml": "YAML"}.get(path.suffix.lower())
    if kind is None:
        raise ParameterError(f"--cluster-config {path}: expected a .toml, .yaml or .yml file")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ParameterError(f"--cluster-config {path}: {error.strerror or error}") from None
    if kind == "TOML":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise ParameterError(f"{path}: not valid TOML: {error}") from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as error:
            raise ParameterError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
    return check_cluster_config(data, source=str(path))


def check_cluster_config(data: Any, *, source: str = "cluster config") -> ClusterConfig:
    """Check a parsed cluster file: known tables and keys only, each value of its type."""
    if not isinstance(data, dict):
        raise ParameterError(f"{source}: expected tables {', '.join(SECTIONS)}, got {type(data).__name__}")
    for name in data:
        if name not in SECTIONS:
            raise ParameterError(f"{source}: unknown key {name!r} (known: {', '.join(SECTIONS)})")
        if not isinstance(data[name], dict):
            raise ParameterError(f"{source}: {name} must be a table")
    for section in ("slurm", "kubernetes"):
        keys = SECTIONS[section]
        assert keys is not None
        for key, value in data.get(section, {}).items():
            if key not in keys:
                raise ParameterError(f"{source}: unknown key '{section}.{key}' (known: {', '.join(keys)})")
            _check_value(source, f"{section}.{key}", value, keys[key], positive=f"{section}.{key}" in _POSITIVE)
    env = data.get("env", {})
    for key, value in env.items():
        if not _ENV_NAME.fullmatch(str(key)):
            raise ParameterError(f"{source}: env.{key} is not a variable name")
        if not isinstance(value, str):  # never show the value: it may be a secret
            raise ParameterError(f"{source}: env.{key} must be a string (quote it)")
    return ClusterConfig(source, dict(data.get("slurm", {})), dict(data.get("kubernetes", {})), dict(env))


def _check_value(source: str, name: str, value: Any, kind: type | tuple[type, ...], *, positive: bool) -> None:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    is_bool = isinstance(value, bool)
    if not isinstance(value, kinds) or (is_bool and bool not in kinds):
        expected = " or ".join({dict: "a table", list: "a list of strings"}.get(k, k.__name__) for k in kinds)
        raise ParameterError(f"{source}: {name} must be {expected}, got {value!r}")
    if isinstance(value, list) and not all(isinstance(item, str) for item in value):
        raise ParameterError(f"{source}: {name} must be a list of strings, got {value!r}")
    if positive and isinstance(value, int | float) and value < 1:
        raise ParameterError(f"{source}: {name} must be at least 1, got {value!r}")


def require_extra(cluster: str) -> None:
    """Refuse, in one line, a cluster whose optional package is not installed (nothing is imported)."""
    if cluster not in EXTRAS:
        return
    module, distribution, extra = EXTRAS[cluster]
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ParameterError(f"--cluster {cluster} needs {distribution}: pip install 'genreflow[{extra}]'")


def worker_env(
    overrides: Mapping[str, str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    s3_endpoint_url: str | None = None,
) -> dict[str, str]:
    """The environment remote workers get: :data:`FORWARDED_ENV` from ``environ`` (default this
    process's), ``s3_endpoint_url`` (``--s3-endpoint-url``) over its variable, the nanny fix, then
    ``overrides`` (a config's ``[env]``), then telemetry off. Values may be secrets: never log them."""
    environ = os.environ if environ is None else environ
    env = {name: environ[name] for name in FORWARDED_ENV if environ.get(name)}
    if s3_endpoint_url:
        env["GENREFLOW_S3_ENDPOINT_URL"] = s3_endpoint_url
    env.update(NANNY_ENV)
    env.update(overrides or {})
    env.update(NO_TELEMETRY_ENV)
    return env


def local_runner_kwargs(workers: int, *, verbose: bool = False) -> dict[str, Any]:
    """``workers`` local processes, one thread each, dashboard on a free loopback port. Local workers
    are forked from a fork server (``dask_cluster.start_local_workers_early``, which also sets the
    nanny's MALLOC fix in Dask's config) and inherit its environment; the Prefect API and S3 variables
    are given again as they are now, as a spawned worker would inherit them."""
    import logging

    return {
        "cluster_class": "distributed.LocalCluster",
        "cluster_kwargs": {
            "n_workers": workers,
            "threads_per_worker": 1,
            "processes": True,
            "env": {key: os.environ[key] for key in FORWARDED_ENV if key in os.environ},
            # A free port: two runs at once do not fight over 8787 (nor warn about it).
            "dashboard_address": "127.0.0.1:0",
            "silence_logs": logging.DEBUG if verbose else logging.ERROR,
        },
    }


def slurm_runner_kwargs(
    config: ClusterConfig,
    *,
    environ: Mapping[str, str] | None = None,
    s3_endpoint_url: str | None = None,
    verbose: bool = False,
    security: Security | None = None,
) -> dict[str, Any]:
    """A ``dask_jobqueue.SLURMCluster``: its scheduler runs in this process, its workers in sbatch jobs.

    Constructing the cluster submits nothing; ``DaskTaskRunner`` then calls ``adapt(minimum_jobs=jobs,
    maximum_jobs=maximum_jobs)``, which submits the jobs and resubmits one that ends (its walltime).
    The workers' environment becomes ``export`` lines at the top of the job script, before the
    config's own ``job_script_prologue``: each job script holds the credentials (module docstring).
    With ``security`` (:func:`dask_security` for all roles) the scheduler listens on ``tls://`` and
    dask-jobqueue gives the job scripts' workers ``--protocol tls://`` and the files' paths.
    """
    import logging

    from dask.utils import parse_bytes

    section = dict(config.slurm)
    where = config.source
    for required in ("cores", "memory"):
        if required not in section:
            raise ParameterError(f"{where}: slurm.{required} is required for --cluster slurm")
    try:
        parse_bytes(section["memory"])
    except ValueError:
        raise ParameterError(f"{where}: slurm.memory must be a size like '64GiB', got {section['memory']!r}") from None
    if "partition" in section and "queue" in section:
        raise ParameterError(f"{where}: give slurm.partition or slurm.queue, not both")
    queue = section.pop("partition", None) or section.pop("queue", None)
    cores = section["cores"]
    processes = section.pop("processes", cores)
    if processes > cores:
        raise ParameterError(f"{where}: slurm.processes ({processes}) exceeds slurm.cores ({cores})")
    jobs = section.pop("jobs", 1)
    maximum_jobs = section.pop("maximum_jobs", jobs)
    if maximum_jobs < jobs:
        raise ParameterError(f"{where}: slurm.maximum_jobs ({maximum_jobs}) is below slurm.jobs ({jobs})")
    env = worker_env(config.env, environ=environ, s3_endpoint_url=s3_endpoint_url)
    exports = [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
    kwargs: dict[str, Any] = {
        "job_name": "genreflow-worker",
        **section,
        "processes": processes,
        "job_script_prologue": exports + list(section.get("job_script_prologue", [])),
        # The scheduler runs here; its dashboard on a free port, on the address the workers reach it by.
        "scheduler_options": {"dashboard_address": ":0", **section.get("scheduler_options", {})},
        "silence_logs": logging.DEBUG if verbose else logging.ERROR,
    }
    if queue:
        kwargs["queue"] = queue
    if security is not None:
        kwargs["security"] = security
    return {
        "cluster_class": "dask_jobqueue.SLURMCluster",
        "cluster_kwargs": kwargs,
        "adapt_kwargs": {"minimum_jobs": jobs, "maximum_jobs": maximum_jobs},
    }


def kubernetes_runner_kwargs(
    config: ClusterConfig,
    *,
    environ: Mapping[str, str] | None = None,
    s3_endpoint_url: str | None = None,
    verbose: bool = False,
) -> dict[str, Any]:
    """A ``dask_kubernetes.operator.KubeCluster`` from a DaskCluster resource built here with
    ``make_cluster_spec`` and passed as ``custom_cluster_spec``: the spec returned is exactly what is
    submitted. Each call names a fresh cluster (``<name>-<8 hex>``), deleted when the run ends, so two
    runs never share one. The workers' environment is in the resource (module docstring).
    """
    require_extra("kubernetes")
    from dask_kubernetes.operator import make_cluster_spec

    section = dict(config.kubernetes)
    where = config.source
    if "image" not in section:
        raise ParameterError(
            f"{where}: kubernetes.image is required for --cluster kubernetes (an image with genreflow)"
        )
    prefix = section.get("name", "genreflow")
    if not _K8S_NAME.fullmatch(prefix):
        raise ParameterError(
            f"{where}: kubernetes.name must be lower-case letters, digits and '-', at most 40, got {prefix!r}"
        )
    if "resources" in section and ("cores" in section or "memory" in section):
        raise ParameterError(f"{where}: give kubernetes.resources or kubernetes.cores/memory, not both")
    for key in ("resources", "scheduler_resources"):
        unknown = set(section.get(key, {})) - {"requests", "limits"}
        if unknown:
            raise ParameterError(
                f"{where}: kubernetes.{key} takes requests and limits, not {', '.join(sorted(unknown))}"
            )
    resources = section.get("resources")
    if resources is None and ("cores" in section or "memory" in section):
        requests = {"cpu": str(section["cores"])} if "cores" in section else {}
        if "memory" in section:
            requests["memory"] = section["memory"]
        # No CPU limit (it throttles a busy decoder); a memory limit, so a runaway worker is OOM-killed alone.
        limits = {"memory": section["memory"]} if "memory" in section else {}
        resources = {"requests": requests, **({"limits": limits} if limits else {})}
    env = worker_env(config.env, environ=environ, s3_endpoint_url=s3_endpoint_url)
    spec = make_cluster_spec(
        name=f"{prefix}-{uuid.uuid4().hex[:8]}",
        image=section["image"],
        n_workers=section.get("workers", 1),
        resources=resources,
        env=env,
        worker_command=f"dask worker --nthreads {section.get('threads', 1)}",
        scheduler_service_type=section.get("scheduler_service_type", "ClusterIP"),
        idle_timeout=section.get("idle_timeout", 0),
    )
    # make_cluster_spec gives the scheduler the workers' resources (a GPU too): it gets its own, or none.
    spec["spec"]["scheduler"]["spec"]["containers"][0]["resources"] = section.get("scheduler_resources")
    kwargs: dict[str, Any] = {
        "custom_cluster_spec": spec,
        "shutdown_on_close": section.get("shutdown_on_close", True),
        "quiet": not verbose,
    }
    if "namespace" in section:
        kwargs["namespace"] = section["namespace"]
    if "resource_timeout" in section:
        kwargs["resource_timeout"] = section["resource_timeout"]
    return {"cluster_class": "dask_kubernetes.operator.KubeCluster", "cluster_kwargs": kwargs}


def dask_security(settings: Settings, *, roles: tuple[str, ...] = CLIENT_ROLE) -> Security | None:
    """The ``distributed.Security`` for the TLS files in ``settings`` (module docstring), or None
    when none is given: encryption required, the CA, and the certificate and key for each of ``roles``.

    The files are checked here, before any work: both the CA and a certificate are needed (a TLS
    scheduler refuses a client without one), each must be readable, and the key must match the
    certificate. The object holds the paths, never the keys, so a runner that Prefect duplicates or
    pickles carries none. Without a key the certificate's path stands in for it: dask-jobqueue puts
    a key on each worker's command line (``--tls-key None`` otherwise).
    """
    given = _tls_files(settings)
    if not given:
        return None
    needed = {"dask_tls_ca_file": "the CA that signed the cluster's certificates",
              "dask_tls_cert": "this process's certificate, signed by that CA"}  # fmt: skip
    for name, what in needed.items():
        if name not in given:
            raise ParameterError(f"{_option(name)} is required with {_option(next(iter(given)))}: {what}")
    for name, path in given.items():
        try:
            with open(path, "rb"):
                pass
        except OSError as error:
            raise ParameterError(f"{_option(name)} {path}: {error.strerror or error}") from None
    ca, cert = str(given["dask_tls_ca_file"]), str(given["dask_tls_cert"])
    key = str(given.get("dask_tls_key", cert))
    try:
        context = ssl.create_default_context(cafile=ca)
    except ssl.SSLError as error:
        reason = error.reason or error
        raise ParameterError(f"{_option('dask_tls_ca_file')} {ca}: not a PEM certificate ({reason})") from None
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as error:
        shown = f"{_option('dask_tls_cert')} {cert}" + (f" with {_option('dask_tls_key')} {key}" if key != cert else "")
        raise ParameterError(
            f"{shown}: not a PEM certificate and its private key ({error.reason or error}; a certificate "
            "without its key needs --dask-tls-key)"
        ) from None
    from distributed import Security

    files = {f"tls_{role}_{kind}": value for role in roles for kind, value in (("cert", cert), ("key", key))}
    return Security(tls_ca_file=ca, require_encryption=True, **files)


def _tls_files(settings: Settings) -> dict[str, Path]:
    return {name: getattr(settings, name) for name in TLS_FILES if getattr(settings, name) is not None}


def _option(name: str) -> str:
    return f"--{name.replace('_', '-')} (or {ENV[name]})"


def scheduler_runner_kwargs(settings: Settings) -> dict[str, Any]:
    """An existing scheduler at ``dask_address``: over TLS (``client_kwargs``, which prefect_dask
    passes to its ``Client``) exactly when the address is ``tls://`` and the files are given."""
    address = str(settings.dask_address)
    tls = address.startswith("tls://")
    given = list(_tls_files(settings))
    if tls and not given:
        raise ParameterError(
            f"--dask-address {address} is a TLS scheduler: it needs {_option('dask_tls_ca_file')} "
            f"and {_option('dask_tls_cert')}"
        )
    if given and not tls:
        raise ParameterError(
            f"{_option(given[0])} secures a tls:// scheduler, but --dask-address is {address}: "
            "use tls://HOST:PORT (a scheduler started with --protocol tls)"
        )
    security = dask_security(settings)
    return {"address": address, **({"client_kwargs": {"security": security}} if security else {})}


def runner_kwargs(settings: Settings, *, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``DaskTaskRunner``'s keyword arguments for ``settings``: an existing scheduler
    (``dask_address``, over TLS with the ``dask_tls_*`` files), local processes (on loopback: the TLS
    files are not used), or the ``cluster`` its ``cluster_config`` describes (SLURM takes the TLS
    files too; Kubernetes refuses them).

    A missing extra, a missing or malformed file, an unknown key, a TLS file for a plain address or
    none for a ``tls://`` one: one :class:`ParameterError`."""
    if settings.cluster == "local":
        if settings.dask_address:
            return scheduler_runner_kwargs(settings)
        return local_runner_kwargs(settings.workers, verbose=settings.verbose)
    if settings.dask_address:
        raise ParameterError(
            f"--dask-address joins an existing scheduler: it cannot be combined with --cluster {settings.cluster}"
        )
    require_extra(settings.cluster)
    if settings.cluster_config is None:
        raise ParameterError(f"--cluster {settings.cluster} needs --cluster-config (or GENREFLOW_CLUSTER_CONFIG)")
    common = {"environ": environ, "s3_endpoint_url": settings.s3_endpoint_url, "verbose": settings.verbose}
    if settings.cluster == "slurm":
        security = dask_security(settings, roles=ALL_ROLES)
        return slurm_runner_kwargs(load_cluster_config(settings.cluster_config), **common, security=security)
    given = list(_tls_files(settings))
    if given:
        raise ParameterError(
            f"{_option(given[0])}: TLS is not supported with --cluster kubernetes (its pods would need the "
            "certificates mounted)"
        )
    return kubernetes_runner_kwargs(load_cluster_config(settings.cluster_config), **common)
