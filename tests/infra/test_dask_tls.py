"""Dask over TLS: certificates made here (a CA, a node certificate for the scheduler and worker, a
client certificate with its key in one file), a real ``dask scheduler --protocol tls`` and ``dask
worker``, an ingest run through them, clients without the cluster's certificates refused, and the
settings' checks as one-line errors before any work."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import ipaddress
import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf

from genreflow.cli.common import add_runtime
from genreflow.cli.common import settings as cli_settings
from genreflow.infra.clusters import dask_security, load_cluster_config, runner_kwargs, slurm_runner_kwargs
from genreflow.infra.settings import ENV, Settings
from genreflow.pipeline.errors import ParameterError
from tests import services
from tests.conftest import tone
from tests.services import settings  # noqa: F401  fixture: the Prefect server the worker reports to

pytestmark = pytest.mark.integration
DASK = str(Path(sys.executable).parent / "dask")
TLS_ENV = [ENV[name] for name in ("dask_address", "dask_tls_ca_file", "dask_tls_cert", "dask_tls_key")]


def _issue(folder: Path, name: str, *, issuer: tuple | None = None) -> tuple:
    """Write ``name.pem`` (certificate) and ``name.key``; a CA when ``issuer`` is None, else a node
    certificate for 127.0.0.1 signed by ``issuer`` (its certificate and key). Returns (cert, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"genreflow-test-{name}")])
    signer_cert, signer_key = issuer or (None, key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(signer_cert.subject if signer_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        ).add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    cert = builder.sign(signer_key, hashes.SHA256())
    (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / f"{name}.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """ca.pem; node.pem + node.key (scheduler and worker); client.pem holding its key too; and
    stranger.pem, a client certificate and key in one file from another CA."""
    folder = tmp_path_factory.mktemp("pki")
    ca = _issue(folder, "ca")
    _issue(folder, "node", issuer=ca)
    _issue(folder, "client", issuer=ca)
    _issue(folder, "stranger", issuer=_issue(folder, "other-ca"))
    for name in ("client", "stranger"):
        (folder / f"{name}.pem").write_bytes(
            (folder / f"{name}.pem").read_bytes() + (folder / f"{name}.key").read_bytes()
        )
    return {path.name: path for path in folder.iterdir()}


def _tls(pki: dict[str, Path], address: str | None = "tls://127.0.0.1:8786", **changes) -> Settings:
    files = {"dask_tls_ca_file": pki["ca.pem"], "dask_tls_cert": pki["client.pem"]}
    return Settings(dask_address=address, **{**files, **changes})


@pytest.fixture(scope="module")
def tls_cluster(pki: dict[str, Path]):
    """The address of a TLS scheduler with one worker, ``tls-worker``; every process started here is stopped here."""
    folder = pki["ca.pem"].parent
    scheduler_file = folder / "scheduler.json"
    certs = ["--tls-ca-file", str(pki["ca.pem"]), "--tls-cert", str(pki["node.pem"]), "--tls-key", str(pki["node.key"])]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}  # the worker inherits PREFECT_API_URL
    processes = [subprocess.Popen([DASK, "scheduler", "--protocol", "tls", *certs, "--host", "127.0.0.1", "--port", "0",
                                   "--no-dashboard", "--scheduler-file", str(scheduler_file)], **quiet)]  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tls://127.0.0.1:")
        processes.append(subprocess.Popen([DASK, "worker", address, *certs, "--nthreads", "1", "--nworkers", "1",
                                           "--no-dashboard", "--name", "tls-worker"], **quiet))  # fmt: skip
        from distributed import Client

        with Client(address, security=dask_security(_tls(pki, address)), timeout=60) as client:
            client.wait_for_workers(1, timeout=60)
        yield address
    finally:
        for process in reversed(processes):  # the worker first: it says goodbye to a scheduler still there
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def test_ingest_runs_on_the_tls_worker(tmp_path: Path, settings: Settings, pki: dict[str, Path], tls_cluster: str):  # noqa: F811
    from distributed import Client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from genreflow.flows.runtime import run_ingest
    from genreflow.pipeline.store import StoreLayout, read_manifest

    source = tmp_path / "drop"
    source.mkdir()
    for i in range(4):
        sf.write(source / f"song{i}.wav", tone(3, freq=220 + 110 * i), 22050)
    on_tls = dataclasses.replace(
        settings, dask_address=tls_cluster, dask_tls_ca_file=pki["ca.pem"], dask_tls_cert=pki["client.pem"]
    )
    store = str(tmp_path / "store")
    # The test server's API, also where an earlier test first imported Prefect with another in the environment.
    with temporary_settings({PREFECT_API_URL: services.PREFECT_API_URL}):
        summary = run_ingest(
            on_tls, source=str(source), store=store, feature_sets=["mel128"], shard_size=2, show_progress=False
        )
    assert summary.counts == {"ok": 4} and len(summary.shards) == 2
    manifest = read_manifest(StoreLayout(store))
    assert sorted(manifest["uri"].str.rsplit("/", n=1).str[1]) == [f"song{i}.wav" for i in range(4)]
    assert set(manifest["status"]) == {"ok"} and manifest["row"].notna().all()

    with Client(tls_cluster, security=dask_security(on_tls), timeout=30) as client:
        pids = client.run(os.getpid)  # worker address -> its process
        names = {w["name"] for w in client.scheduler_info()["workers"].values()}
        computed = client.run_on_scheduler(  # by task name, the tasks that reached memory
            lambda dask_scheduler: {name: p.state_counts["memory"] for name, p in dask_scheduler.task_prefixes.items()}
        )
    assert names == {"tls-worker"} and all(address.startswith("tls://") for address in pids)
    assert {shard.pid for shard in summary.shards} <= set(pids.values())  # the shards ran in the TLS worker
    assert computed == {"extract_shard": 2}  # the scheduler ran both shards, and nothing else


def test_clients_without_the_clusters_certificates_are_refused(pki: dict[str, Path], tls_cluster: str):
    from distributed import Client, Security

    plain = "tcp://" + tls_cluster.removeprefix("tls://")
    started = time.monotonic()
    # Refused either way: the scheduler hangs up, or (on a loaded machine) the handshake times out.
    with pytest.raises(OSError, match=r"closed|reset|[Tt]imed out"):
        Client(plain, timeout="10s")  # no TLS at all
    stranger = Security(
        tls_ca_file=str(pki["ca.pem"]), tls_client_cert=str(pki["stranger.pem"]), require_encryption=True
    )
    # With TLS 1.3 the client learns of the refusal as an alert ("unknown ca") or, depending on timing,
    # as the connection closed under it (SSLEOFError): either way it never joins.
    with pytest.raises(OSError, match=r"unknown ca|EOF|closed|[Tt]imed out"):
        Client(tls_cluster, security=stranger, timeout="10s")  # a certificate the cluster's CA did not sign
    assert time.monotonic() - started < 30


def test_the_runner_passes_the_files_paths_to_its_client(pki: dict[str, Path]):
    from distributed import Security

    from genreflow.infra.dask_cluster import task_runner

    runner = task_runner(_tls(pki))
    security = runner.client_kwargs["security"]
    assert isinstance(security, Security) and security.require_encryption
    files = (security.tls_ca_file, security.tls_client_cert, security.tls_client_key)
    assert files == (str(pki["ca.pem"]), str(pki["client.pem"]), str(pki["client.pem"]))  # paths, no key material
    assert security.tls_scheduler_cert is None and security.tls_worker_cert is None
    copied = pickle.loads(pickle.dumps(runner.duplicate()))  # how Prefect hands a flow its runner, and more
    again = copied.client_kwargs["security"]
    assert (copied.address, again.tls_ca_file, again.tls_client_cert, again.tls_client_key) == (runner.address, *files)
    # a plain address keeps the runner as it was; local workers stay on loopback without the files
    assert runner_kwargs(Settings(dask_address="tcp://scheduler:8786")) == {"address": "tcp://scheduler:8786"}
    assert runner_kwargs(_tls(pki, None)) == runner_kwargs(Settings())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dask_address": "tls://10.0.0.5:8786", "dask_tls_ca_file": None, "dask_tls_cert": None},
         r"--dask-address tls://10.0.0.5:8786 is a TLS scheduler: it needs --dask-tls-ca-file \(or "
         r"GENREFLOW_DASK_TLS_CA_FILE\) and --dask-tls-cert \(or GENREFLOW_DASK_TLS_CERT\)$"),
        ({"dask_address": "tcp://10.0.0.5:8786"},
         r"--dask-tls-ca-file \(or GENREFLOW_DASK_TLS_CA_FILE\) secures a tls:// scheduler, but --dask-address is "
         r"tcp://10.0.0.5:8786: use tls://HOST:PORT"),
        ({"dask_address": "10.0.0.5:8786"}, r"but --dask-address is 10.0.0.5:8786: use tls://"),
        ({"dask_tls_key": Path("/nonexistent/client.key")},
         r"^--dask-tls-key \(or GENREFLOW_DASK_TLS_KEY\) /nonexistent/client.key: No such file or directory$"),
        ({"dask_tls_ca_file": None},
         r"^--dask-tls-ca-file \(or GENREFLOW_DASK_TLS_CA_FILE\) is required with --dask-tls-cert .*: the CA"),
        ({"dask_tls_cert": "node.pem"}, r"--dask-tls-cert \(or GENREFLOW_DASK_TLS_CERT\) .*node.pem: not a PEM "
         r"certificate and its private key .*needs --dask-tls-key"),  # a certificate file without its key
        ({"dask_tls_cert": "node.pem", "dask_tls_key": "client.key"}, r"node.pem with --dask-tls-key .*client.key: "
         r"not a PEM certificate and its private key"),  # not its key
        ({"dask_tls_ca_file": "missing-ca.pem"}, r"--dask-tls-ca-file .*missing-ca.pem: No such file"),
        ({"dask_tls_ca_file": "node.key"}, r"--dask-tls-ca-file .*node.key: not a PEM certificate"),
    ],
)  # fmt: skip
def test_tls_settings_are_checked_before_any_work(pki: dict[str, Path], changes: dict, message: str):
    folder = pki["ca.pem"].parent  # a file named by a string lies in the pki folder
    changes = {k: folder / v if isinstance(v, str) and not k.endswith("address") else v for k, v in changes.items()}
    with pytest.raises(ParameterError, match=message) as raised:
        runner_kwargs(dataclasses.replace(_tls(pki), **changes))
    assert "\n" not in str(raised.value)


def test_settings_and_flags_name_the_tls_files(pki: dict[str, Path], monkeypatch: pytest.MonkeyPatch):
    environ = {"GENREFLOW_DASK_TLS_CA_FILE": "/etc/dask/ca.pem", "GENREFLOW_DASK_TLS_CERT": "/etc/dask/me.pem",
               "GENREFLOW_DASK_TLS_KEY": "/etc/dask/me.key"}  # fmt: skip
    resolved = Settings.resolve(environ, dask_tls_key="/flag/me.key")
    assert (resolved.dask_tls_ca_file, resolved.dask_tls_cert) == (Path("/etc/dask/ca.pem"), Path("/etc/dask/me.pem"))
    assert resolved.dask_tls_key == Path("/flag/me.key")  # the flag over the environment
    parameter = {"dask_address": "tls://s:8786", "dask_tls_ca_file": "/etc/dask/ca.pem", "dask_tls_cert": "/me.pem"}
    coerced = Settings.coerce(parameter)  # a deployment's JSON parameter
    assert (coerced.dask_tls_ca_file, coerced.dask_tls_cert, coerced.dask_tls_key) == (
        Path("/etc/dask/ca.pem"), Path("/me.pem"), None)  # fmt: skip

    parser = argparse.ArgumentParser()
    add_runtime(parser)
    for name in TLS_ENV:
        monkeypatch.delenv(name, raising=False)
    flags = ["--dask-address", "tls://127.0.0.1:8786", "--dask-tls-ca-file", str(pki["ca.pem"])]
    flags += ["--dask-tls-cert", str(pki["node.pem"]), "--dask-tls-key", str(pki["node.key"])]
    flagged = cli_settings(parser.parse_args(flags), store_required=False)
    assert (flagged.dask_tls_cert, flagged.dask_tls_key) == (pki["node.pem"], pki["node.key"])
    monkeypatch.setenv("GENREFLOW_DASK_ADDRESS", "tls://127.0.0.1:8786")
    with pytest.raises(ParameterError, match=r"is a TLS scheduler: it needs --dask-tls-ca-file"):  # before any work
        cli_settings(parser.parse_args([]), store_required=False)
    monkeypatch.setenv("GENREFLOW_DASK_TLS_CA_FILE", str(pki["ca.pem"]))
    monkeypatch.setenv("GENREFLOW_DASK_TLS_CERT", str(pki["client.pem"]))
    assert cli_settings(parser.parse_args([]), store_required=False).dask_tls_cert == pki["client.pem"]


def test_a_slurm_cluster_runs_its_scheduler_and_workers_on_tls(pki: dict[str, Path], tmp_path: Path):
    """The scheduler starts here (submitting nothing); the job script gives each worker the files."""
    from dask_jobqueue import SLURMCluster
    from distributed import Client

    config = tmp_path / "cluster.toml"
    config.write_text('[slurm]\ncores = 1\nmemory = "1GiB"\n')
    on_slurm = _tls(pki, None, cluster="slurm", cluster_config=config, dask_tls_cert=pki["node.pem"],
                    dask_tls_key=pki["node.key"])  # fmt: skip
    kwargs = runner_kwargs(on_slurm)
    assert kwargs == slurm_runner_kwargs(load_cluster_config(config), security=kwargs["cluster_kwargs"]["security"])
    with SLURMCluster(**kwargs["cluster_kwargs"]) as cluster:
        assert cluster.scheduler_address.startswith("tls://")
        script = cluster.job_script()
        with Client(cluster, timeout=30) as client:  # the cluster's own security: a TLS client
            assert client.scheduler_info()["address"] == cluster.scheduler_address
    worker = next(line for line in script.splitlines() if "distributed.cli.dask_worker" in line)
    for flag, path in (("--tls-ca-file", "ca.pem"), ("--tls-cert", "node.pem"), ("--tls-key", "node.key")):
        assert f"{flag} {pki[path]}" in worker
    assert "--protocol tls://" in worker
    with pytest.raises(ParameterError, match=r"--dask-tls-ca-file .*not supported with --cluster kubernetes"):
        runner_kwargs(dataclasses.replace(on_slurm, cluster="kubernetes"))
