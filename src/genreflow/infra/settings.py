"""Settings: CLI flags first, then environment variables, then defaults. Built here, passed down."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genreflow.pipeline.errors import ParameterError
from genreflow.pipeline.ingest_config import IN_PROCESS_TRACKS

ENV = {
    "store": "GENREFLOW_STORE",
    "dask_address": "GENREFLOW_DASK_ADDRESS",
    "workers": "GENREFLOW_WORKERS",
    "s3_endpoint_url": "GENREFLOW_S3_ENDPOINT_URL",
    "home": "GENREFLOW_HOME",
    "cluster": "GENREFLOW_CLUSTER",
    "cluster_config": "GENREFLOW_CLUSTER_CONFIG",
    "dask_tls_ca_file": "GENREFLOW_DASK_TLS_CA_FILE",
    "dask_tls_cert": "GENREFLOW_DASK_TLS_CERT",
    "dask_tls_key": "GENREFLOW_DASK_TLS_KEY",
}
# Fields that name files: given as strings by the environment and by a deployment's JSON parameters.
PATHS = ("home", "cluster_config", "dask_tls_ca_file", "dask_tls_cert", "dask_tls_key")
# Where Dask workers run (``infra/clusters.py``): local processes, SLURM jobs, Kubernetes pods.
CLUSTERS = ("local", "slurm", "kubernetes")


@dataclass(frozen=True)
class Settings:
    """Everything about *where* genreflow runs; nothing about what it computes."""

    store: str | None = None
    dask_address: str | None = None
    workers: int = 2
    s3_endpoint_url: str | None = None
    home: Path = field(default_factory=lambda: Path.home() / ".genreflow")
    verbose: bool = False
    cluster: str = "local"
    cluster_config: Path | None = None
    in_process_tracks: int = IN_PROCESS_TRACKS  # local runs this small decode on the flow's threads
    # TLS for Dask's connections (``clusters.dask_security``): the CA that signed the cluster's
    # certificates, and this process's certificate and key (omitted when the certificate file holds it).
    dask_tls_ca_file: Path | None = None
    dask_tls_cert: Path | None = None
    dask_tls_key: Path | None = None

    @classmethod
    def resolve(cls, environ: Mapping[str, str] | None = None, **flags: Any) -> Settings:
        """Merge flags (None = not given) over ``environ`` over defaults."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, variable in ENV.items():
            if flags.get(name) is not None:
                values[name] = flags[name]
            elif environ.get(variable):
                values[name] = environ[variable]
        if "workers" in values:
            values["workers"] = int(values["workers"])
        for name in PATHS:
            if name in values:
                values[name] = Path(values[name])
        if values.get("cluster", "local") not in CLUSTERS:
            raise ParameterError(f"unknown cluster {values['cluster']!r} (GENREFLOW_CLUSTER): use {'|'.join(CLUSTERS)}")
        values["verbose"] = bool(flags.get("verbose"))
        return cls(**values)

    @classmethod
    def coerce(cls, value: Settings | Mapping[str, Any] | None) -> Settings | None:
        """``value`` as Settings: a deployment's parameters arrive as JSON (a mapping, the
        :data:`PATHS` as strings), a CLI run's as the object itself."""
        if value is None or isinstance(value, Settings):
            return value
        fields = dict(value)
        unknown = set(fields) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ParameterError(f"settings: unknown keys {sorted(unknown)}")
        for name in PATHS:
            if fields.get(name) is not None:
                fields[name] = Path(fields[name])
        return cls(**fields)

    def decodes_in_process(self, tracks: int) -> bool:
        """Whether a run with ``tracks`` to decode is better off on its own threads: no cluster was
        given, and starting local worker processes would cost more than they save."""
        return self.cluster == "local" and not self.dask_address and tracks <= self.in_process_tracks

    @property
    def storage_options(self) -> dict[str, Any]:
        """fsspec options for ``s3://`` URIs; credentials come from the usual AWS variables."""
        return {"endpoint_url": self.s3_endpoint_url} if self.s3_endpoint_url else {}
