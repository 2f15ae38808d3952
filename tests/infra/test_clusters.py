"""Where Dask workers run (``infra/clusters.py``, ``infra/dask_cluster.py``): SLURM job scripts from a
real ``SLURMCluster`` (and one submitted to a stand-in ``sbatch``), the Kubernetes DaskCluster resource
exactly as it would be submitted, the workers' environment, the config file's checks, the CLI options,
and the local cluster's dashboard answering over HTTP."""

from __future__ import annotations

import argparse
import inspect
import logging
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from genreflow.cli.common import add_runtime
from genreflow.cli.common import settings as cli_settings
from genreflow.infra.clusters import (
    ClusterConfig,
    kubernetes_runner_kwargs,
    load_cluster_config,
    runner_kwargs,
    slurm_runner_kwargs,
    worker_env,
)
from genreflow.infra.dask_cluster import dashboard_link, start_local_workers_early, task_runner
from genreflow.infra.settings import Settings
from genreflow.pipeline.errors import ParameterError

SECRET = "s3cr3t/$HOME 'quoted'"  # needs shell quoting; must never reach a log
SUBMITTER = {
    "PREFECT_API_URL": "http://prefect.internal:4200/api",
    "GENREFLOW_S3_ENDPOINT_URL": "http://minio.internal:9000",
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": SECRET,
    "AWS_DEFAULT_REGION": "eu-west-1",
    "UNRELATED": "stays here",
}
CONFIG_TOML = """
[slurm]
partition = "cpu"
account = "audio"
cores = 8
memory = "32GiB"
walltime = "02:30:00"
jobs = 3
job_script_prologue = ["source /shared/genreflow/.venv/bin/activate"]

[kubernetes]
image = "ghcr.io/acme/genreflow:0.1.0"
namespace = "audio"
workers = 5
cores = 2
memory = "8Gi"

[env]
AWS_DEFAULT_REGION = "us-east-1"
"""
CONFIG_YAML = """
slurm: {partition: cpu, account: audio, cores: 8, memory: 32GiB, walltime: "02:30:00", jobs: 3,
        job_script_prologue: ["source /shared/genreflow/.venv/bin/activate"]}
kubernetes: {image: "ghcr.io/acme/genreflow:0.1.0", namespace: audio, workers: 5, cores: 2, memory: 8Gi}
env: {AWS_DEFAULT_REGION: us-east-1}
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.toml"
    path.write_text(CONFIG_TOML)
    return path


@pytest.fixture
def submitter_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's environment as a submitting host's: a reachable API, S3 credentials."""
    for name in ("PREFECT_API_KEY", "PREFECT_API_AUTH_STRING", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in SUBMITTER.items():
        monkeypatch.setenv(name, value)


def test_worker_env_forwards_api_and_s3_then_config_then_telemetry_off():
    env = worker_env({"AWS_DEFAULT_REGION": "us-east-1", "DO_NOT_TRACK": "0"}, environ=SUBMITTER)
    assert env["PREFECT_API_URL"] == SUBMITTER["PREFECT_API_URL"]
    assert env["GENREFLOW_S3_ENDPOINT_URL"] == "http://minio.internal:9000"
    assert env["AWS_ACCESS_KEY_ID"] == "AKIAEXAMPLE" and env["AWS_SECRET_ACCESS_KEY"] == SECRET
    assert env["AWS_DEFAULT_REGION"] == "us-east-1"  # the config wins over the submitter
    assert env["DO_NOT_TRACK"] == "1" and env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"  # always
    assert "UNRELATED" not in env and "AWS_SESSION_TOKEN" not in env  # only the listed ones, when set
    assert worker_env(environ={}, s3_endpoint_url="http://flag:9000")["GENREFLOW_S3_ENDPOINT_URL"] == "http://flag:9000"


def test_nanny_fix_travels_in_the_workers_environment():
    """A remote nanny given NANNY_ENV leaves MALLOC_TRIM_THRESHOLD_ unset, as local workers do."""
    env = {**worker_env(environ={}), "PATH": "/usr/bin:/bin"}
    code = (
        "from distributed.nanny import _get_env_variables as g;"
        "e = g('distributed.nanny.pre-spawn-environ');"
        "print('MALLOC_TRIM_THRESHOLD_' in e, e.get('OMP_NUM_THREADS'))"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["False", "1"], done.stderr


def test_toml_and_yaml_files_read_alike(tmp_path: Path, config_file: Path):
    yaml_file = tmp_path / "cluster.yaml"
    yaml_file.write_text(CONFIG_YAML)
    toml, yaml = load_cluster_config(config_file), load_cluster_config(yaml_file)
    assert (toml.slurm, toml.kubernetes, toml.env) == (yaml.slurm, yaml.kubernetes, yaml.env)
    assert toml.slurm["cores"] == 8 and toml.env == {"AWS_DEFAULT_REGION": "us-east-1"}


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("c.toml", "[slurm]\nqueu = 'cpu'\n", "c.toml: unknown key 'slurm.queu'"),
        ("c.yaml", "kubernetes:\n  imag: x\n", "c.yaml: unknown key 'kubernetes.imag'"),
        ("c.toml", "[pbs]\nqueue = 'x'\n", "c.toml: unknown key 'pbs'"),
        ("c.toml", "[slurm]\ncores = 'four'\n", "c.toml: slurm.cores must be int, got 'four'"),
        ("c.toml", "[slurm]\ncores = 0\n", "c.toml: slurm.cores must be at least 1"),
        ("c.toml", "[slurm]\njob_script_prologue = 'module load x'\n", "slurm.job_script_prologue must be a list"),
        ("c.toml", "[env]\nAWS_SECRET_ACCESS_KEY = 12345\n", "c.toml: env.AWS_SECRET_ACCESS_KEY must be a string"),
        ("c.toml", "[env]\n'A; rm -rf ~' = 'x'\n", "is not a variable name"),
        ("c.toml", "[slurm\n", "c.toml: not valid TOML"),
        ("c.yaml", "slurm: [\n", "c.yaml: not valid YAML"),
        ("c.json", "{}", "expected a .toml, .yaml or .yml file"),
    ],
)
def test_config_errors_name_the_file_and_key(tmp_path: Path, name: str, text: str, message: str):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ParameterError, match=re.escape(message)) as caught:
        load_cluster_config(path)
    assert "12345" not in str(caught.value)  # a value that may be a secret is never echoed


def test_config_values_are_checked_per_cluster(tmp_path: Path):
    def slurm(**section):
        return slurm_runner_kwargs(ClusterConfig("c.toml", slurm=section), environ={})

    with pytest.raises(ParameterError, match=r"c.toml: slurm.memory is required"):
        slurm(cores=4)
    with pytest.raises(ParameterError, match=r"slurm.memory must be a size like '64GiB', got 'lots'"):
        slurm(cores=4, memory="lots")
    with pytest.raises(ParameterError, match=r"slurm.processes \(8\) exceeds slurm.cores \(4\)"):
        slurm(cores=4, memory="8GiB", processes=8)
    with pytest.raises(ParameterError, match=r"slurm.maximum_jobs \(1\) is below slurm.jobs \(2\)"):
        slurm(cores=4, memory="8GiB", jobs=2, maximum_jobs=1)
    with pytest.raises(ParameterError, match=r"kubernetes.image is required"):
        kubernetes_runner_kwargs(ClusterConfig("c.toml", kubernetes={"workers": 2}), environ={})
    with pytest.raises(ParameterError, match=r"kubernetes.name must be lower-case"):
        kubernetes_runner_kwargs(ClusterConfig("c.toml", kubernetes={"image": "i", "name": "Genre_Flow"}), environ={})
    missing = tmp_path / "absent.toml"
    with pytest.raises(ParameterError, match=r"--cluster-config .*absent.toml: No such file"):
        runner_kwargs(Settings(cluster="slurm", cluster_config=missing))


def test_slurm_job_script_from_a_real_slurmcluster(config_file: Path):
    """Constructing SLURMCluster starts a scheduler here and submits nothing (that is ``adapt``)."""
    from dask_jobqueue import SLURMCluster

    kwargs = slurm_runner_kwargs(load_cluster_config(config_file), environ=SUBMITTER)
    assert kwargs["cluster_class"] == "dask_jobqueue.SLURMCluster"
    assert kwargs["adapt_kwargs"] == {"minimum_jobs": 3, "maximum_jobs": 3}
    cluster = SLURMCluster(**kwargs["cluster_kwargs"])
    try:
        script = cluster.job_script()
        assert not cluster.workers  # no job submitted
    finally:
        cluster.close()
    lines = script.splitlines()
    for directive in ("-J genreflow-worker", "-p cpu", "-A audio", "--cpus-per-task=8", "--mem=32G", "-t 02:30:00"):
        assert f"#SBATCH {directive}" in lines, script
    assert "export PREFECT_API_URL=http://prefect.internal:4200/api" in lines
    assert "export GENREFLOW_S3_ENDPOINT_URL=http://minio.internal:9000" in lines
    assert "export AWS_ACCESS_KEY_ID=AKIAEXAMPLE" in lines
    assert "export AWS_DEFAULT_REGION=us-east-1" in lines  # [env] over the submitter's
    assert "export DO_NOT_TRACK=1" in lines and "export PREFECT_SERVER_ANALYTICS_ENABLED=false" in lines
    exports = [line for line in lines if line.startswith("export ")]
    assert lines.index("source /shared/genreflow/.venv/bin/activate") > lines.index(exports[-1])
    worker = next(line for line in lines if "distributed.cli.dask_worker" in line)
    assert "--nthreads 1" in worker and "--nworkers 8" in worker  # one thread per process, as locally
    # The export lines hand bash the exact values, quoting included.
    shown = subprocess.run(
        ["bash", "-c", "\n".join([*exports, 'printf %s "$AWS_SECRET_ACCESS_KEY"'])],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout == SECRET


def test_slurm_runner_submits_its_script_and_logs_no_secret(
    tmp_path: Path, config_file: Path, submitter_env: None, monkeypatch: pytest.MonkeyPatch, caplog
):
    """task_runner → DaskTaskRunner → SLURMCluster → adapt → sbatch, with stand-ins for sbatch/scancel."""
    bin_dir, submitted = tmp_path / "bin", tmp_path / "submitted"
    bin_dir.mkdir()
    submitted.mkdir()
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\ncp "$1" {submitted}/job-$$.sh\necho "Submitted batch job $$"\n')
    (bin_dir / "scancel").write_text("#!/bin/sh\nexit 0\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin")
    caplog.set_level(logging.DEBUG)
    runner = task_runner(Settings(cluster="slurm", cluster_config=config_file))
    with runner:
        runner.client  # noqa: B018  (prefect_dask starts the cluster on first use)
        deadline = time.monotonic() + 20
        while len(list(submitted.iterdir())) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
    scripts = sorted(submitted.iterdir())
    assert len(scripts) == 3  # minimum_jobs
    assert "export PREFECT_API_URL=http://prefect.internal:4200/api" in scripts[0].read_text().splitlines()
    assert any("sbatch" in record.getMessage() for record in caplog.records)  # DEBUG logs were on
    assert not [r.name for r in caplog.records if "s3cr3t" in r.getMessage() or "AKIAEXAMPLE" in r.getMessage()]


def test_kubernetes_resource_is_what_make_cluster_spec_builds(config_file: Path):
    from dask_kubernetes.operator import KubeCluster
    from prefect.utilities.importtools import from_qualified_name

    kwargs = kubernetes_runner_kwargs(load_cluster_config(config_file), environ=SUBMITTER)
    assert from_qualified_name(kwargs["cluster_class"]) is KubeCluster
    inspect.signature(KubeCluster).bind(**kwargs["cluster_kwargs"])  # every keyword is KubeCluster's
    cluster_kwargs = kwargs["cluster_kwargs"]
    assert cluster_kwargs["namespace"] == "audio" and cluster_kwargs["shutdown_on_close"] is True
    spec = cluster_kwargs["custom_cluster_spec"]
    assert spec["apiVersion"] == "kubernetes.dask.org/v1" and spec["kind"] == "DaskCluster"
    assert spec["metadata"]["name"].startswith("genreflow-") and len(spec["metadata"]["name"]) == len("genreflow-") + 8
    worker, scheduler = spec["spec"]["worker"], spec["spec"]["scheduler"]
    assert worker["replicas"] == 5
    (container,) = worker["spec"]["containers"]
    assert container["image"] == scheduler["spec"]["containers"][0]["image"] == "ghcr.io/acme/genreflow:0.1.0"
    assert container["resources"] == {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"memory": "8Gi"}}
    assert scheduler["spec"]["containers"][0]["resources"] is None  # not the workers' share
    assert container["args"][:4] == ["dask", "worker", "--nthreads", "1"]
    env = {entry["name"]: entry["value"] for entry in container["env"]}
    assert env["PREFECT_API_URL"] == "http://prefect.internal:4200/api"
    assert env["GENREFLOW_S3_ENDPOINT_URL"] == "http://minio.internal:9000"
    assert env["AWS_ACCESS_KEY_ID"] == "AKIAEXAMPLE" and env["AWS_SECRET_ACCESS_KEY"] == SECRET
    assert env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["DO_NOT_TRACK"] == "1" and env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    again = kubernetes_runner_kwargs(load_cluster_config(config_file), environ=SUBMITTER)
    assert again["cluster_kwargs"]["custom_cluster_spec"]["metadata"]["name"] != spec["metadata"]["name"]


def test_task_runner_for_each_cluster(config_file: Path, submitter_env: None, monkeypatch, caplog):
    local = task_runner(Settings(workers=3))
    assert local.cluster_class == "distributed.LocalCluster"
    assert local.cluster_kwargs["n_workers"] == 3 and local.cluster_kwargs["threads_per_worker"] == 1
    assert local.cluster_kwargs["processes"] is True and local.cluster_kwargs["dashboard_address"] == "127.0.0.1:0"
    assert task_runner(Settings(dask_address="tcp://10.0.0.5:8786")).address == "tcp://10.0.0.5:8786"
    slurm = task_runner(Settings(cluster="slurm", cluster_config=config_file))
    assert slurm.cluster_class == "dask_jobqueue.SLURMCluster" and slurm.adapt_kwargs["minimum_jobs"] == 3
    kube = task_runner(Settings(cluster="kubernetes", cluster_config=config_file))
    assert kube.cluster_class == "dask_kubernetes.operator.KubeCluster"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")  # genreflow's local server
    task_runner(Settings(cluster="slurm", cluster_config=config_file))
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "--cluster slurm: the workers' PREFECT_API_URL is on 127.0.0.1" in warning


def test_missing_extra_and_conflicts_are_one_line(config_file: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)  # as if not installed
    one_line = r"^--cluster slurm needs dask-jobqueue: pip install 'genreflow\[slurm\]'$"
    with pytest.raises(ParameterError, match=one_line):
        runner_kwargs(Settings(cluster="slurm", cluster_config=config_file))
    monkeypatch.setitem(sys.modules, "dask_kubernetes", None)
    with pytest.raises(ParameterError, match=r"^--cluster kubernetes needs dask-kubernetes: .*genreflow\[kubernetes\]"):
        runner_kwargs(Settings(cluster="kubernetes", cluster_config=config_file))
    monkeypatch.undo()
    with pytest.raises(ParameterError, match=r"--dask-address .* cannot be combined with --cluster slurm"):
        runner_kwargs(Settings(cluster="slurm", cluster_config=config_file, dask_address="tcp://x:8786"))
    with pytest.raises(ParameterError, match=r"--cluster kubernetes needs --cluster-config"):
        runner_kwargs(Settings(cluster="kubernetes"))


def test_cli_options_and_environment(config_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    parser = argparse.ArgumentParser()
    add_runtime(parser)
    for name in ("GENREFLOW_CLUSTER", "GENREFLOW_CLUSTER_CONFIG", "GENREFLOW_DASK_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    assert cli_settings(parser.parse_args([]), store_required=False).cluster == "local"
    flagged = cli_settings(
        parser.parse_args(["--cluster", "slurm", "--cluster-config", str(config_file)]), store_required=False
    )
    assert (flagged.cluster, flagged.cluster_config) == ("slurm", config_file)
    monkeypatch.setenv("GENREFLOW_CLUSTER", "kubernetes")
    monkeypatch.setenv("GENREFLOW_CLUSTER_CONFIG", str(config_file))
    from_env = cli_settings(parser.parse_args([]), store_required=False)
    assert (from_env.cluster, from_env.cluster_config) == ("kubernetes", config_file)
    bad = tmp_path / "bad.toml"
    bad.write_text("[kubernetes]\nimage = 'x'\nreplicas = 3\n")
    with pytest.raises(ParameterError, match=r"bad.toml: unknown key 'kubernetes.replicas'"):  # before any work
        cli_settings(parser.parse_args(["--cluster-config", str(bad)]), store_required=False)
    monkeypatch.setenv("GENREFLOW_CLUSTER", "pbs")
    with pytest.raises(
        ParameterError, match=re.escape("unknown cluster 'pbs' (GENREFLOW_CLUSTER): use local|slurm|kubernetes")
    ):
        cli_settings(parser.parse_args([]), store_required=False)
    with pytest.raises(SystemExit):
        parser.parse_args(["--cluster", "pbs"])


def _worker_facts() -> dict:
    import os
    import sys
    from pathlib import Path

    return {
        "parent": Path(f"/proc/{os.getppid()}/cmdline").read_bytes().decode(errors="replace"),
        "preloaded": "genreflow.tasks.ingest" in sys.modules,  # no task has run on this worker yet
        "blas_threads": os.environ.get("OMP_NUM_THREADS"),
        "endpoint": os.environ.get("GENREFLOW_S3_ENDPOINT_URL"),
    }


@pytest.mark.integration
def test_local_task_runner_serves_its_dashboard_and_forks_preloaded_workers(monkeypatch):
    from distributed.core import Status

    start_local_workers_early(Settings(workers=1))
    monkeypatch.setenv("GENREFLOW_S3_ENDPOINT_URL", "http://127.0.0.1:9/")  # set after the fork server started
    with task_runner(Settings(workers=1)) as runner:
        [facts] = runner.client.run(_worker_facts).values()
        # forked from the fork server, which imported the shard code once; the environment of a spawned worker
        assert "multiprocessing.forkserver" in facts["parent"] and facts["preloaded"]
        assert facts["blas_threads"] == "1" and facts["endpoint"] == "http://127.0.0.1:9/"
        link = dashboard_link(runner)
        assert link and link.startswith("http://127.0.0.1:") and link.endswith("/status")
        base = link.rsplit("/", 1)[0]
        with urllib.request.urlopen(f"{base}/health", timeout=10) as health:
            assert health.status == 200 and health.read() == b"ok"
        with urllib.request.urlopen(link, timeout=10) as status:
            assert status.status == 200
    assert runner._cluster.status == Status.closed
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{base}/health", timeout=5)


@pytest.mark.integration
def test_workers_are_spawned_when_prefect_settings_changed_since_the_fork_server_started(monkeypatch):
    start_local_workers_early(Settings(workers=1))
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "ERROR")  # the fork server imported Prefect with other settings
    start_local_workers_early(Settings(workers=1))
    with task_runner(Settings(workers=1)) as runner:
        [facts] = runner.client.run(_worker_facts).values()
    assert "multiprocessing.forkserver" not in facts["parent"] and not facts["preloaded"]


def test_the_documented_example_is_a_valid_config(tmp_path: Path):
    """The example in infra/clusters.py's docstring parses and builds both clusters."""
    from genreflow.infra import clusters

    doc = clusters.__doc__ or ""
    block = doc[doc.index("# cluster.toml") : doc.index("The workers' environment")]
    path = tmp_path / "cluster.toml"
    path.write_text("\n".join(line.removeprefix("    ") for line in block.splitlines()))
    config = load_cluster_config(path)
    assert slurm_runner_kwargs(config, environ={})["adapt_kwargs"] == {"minimum_jobs": 4, "maximum_jobs": 8}
    spec = kubernetes_runner_kwargs(config, environ={})["cluster_kwargs"]["custom_cluster_spec"]
    assert spec["spec"]["worker"]["replicas"] == 8
