"""``prefect.yaml``: what ``prefect deploy`` reads. Each entrypoint loads a real flow (no placeholder),
the parameters fit its signature, the pools and the nightly schedule are the ones documented, and the
flows are those ``genreflow serve`` serves under the same names. No server."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "prefect.yaml").read_text())
DEPLOYMENTS = {deployment["name"]: deployment for deployment in CONFIG["deployments"]}
POOLS = {"nightly": "cpu", "backfill": "cpu", "score": "cpu", "train": "gpu"}


def _flow(name: str, monkeypatch: pytest.MonkeyPatch):
    """The deployment's flow, loaded from its entrypoint as a worker does after the pull step (cwd = checkout)."""
    from prefect.flows import load_flow_from_entrypoint

    monkeypatch.chdir(ROOT)
    return load_flow_from_entrypoint(DEPLOYMENTS[name]["entrypoint"], use_placeholder_flow=False)


def test_prefect_deploy_accepts_the_file():
    # The model `prefect deploy` validates the file with (it skips a file that fails, with a warning),
    # and its deployment fields: unknown keys would be ignored silently.
    from prefect.cli.deploy._models import DeploymentConfig, PrefectYamlModel

    model = PrefectYamlModel.model_validate(CONFIG)
    assert sorted(d.name for d in model.deployments) == sorted(POOLS)
    for deployment in CONFIG["deployments"]:
        assert set(deployment) <= set(DeploymentConfig.model_fields), deployment["name"]
    [step] = CONFIG["pull"]
    assert list(step) == ["prefect.deployments.steps.set_working_directory"]
    from prefect.deployments.steps import set_working_directory  # the step's function exists

    assert set(step["prefect.deployments.steps.set_working_directory"]) <= set(
        inspect.signature(set_working_directory).parameters
    )


@pytest.mark.parametrize("name", sorted(POOLS))
def test_entrypoint_is_a_flow_taking_these_parameters(name, monkeypatch):
    from prefect import Flow

    deployment = DEPLOYMENTS[name]
    flow = _flow(name, monkeypatch)
    assert isinstance(flow, Flow)
    signature = inspect.signature(flow.fn)
    given = dict(deployment.get("parameters") or {})
    assert not set(given) - set(signature.parameters), f"{name}: not parameters of {flow.name}"
    required = {
        p.name
        for p in signature.parameters.values()
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }
    assert required <= set(given), f"{name}: required parameters missing"
    flow.validate_parameters(given)  # the values fit the annotations (a list of sources, not one string)
    assert deployment["work_pool"]["name"] == POOLS[name]


def test_nightly_is_scheduled_and_the_others_run_on_demand():
    from prefect.client.schemas.schedules import CronSchedule

    from genreflow.infra.deployments import DEFAULT_CRON

    [schedule] = DEPLOYMENTS["nightly"]["schedules"]
    parsed = CronSchedule(cron=schedule["cron"], timezone=schedule.get("timezone"))  # raises on a bad one
    assert parsed.cron == DEFAULT_CRON and parsed.timezone == "UTC"
    for name in ("backfill", "score", "train"):
        assert not DEPLOYMENTS[name].get("schedules") and not DEPLOYMENTS[name].get("schedule")


@pytest.mark.parametrize("name", sorted(POOLS))
def test_same_flows_as_genreflow_serve(name, monkeypatch):
    from genreflow.infra.deployments import ENTRYPOINTS, load_flow

    assert set(ENTRYPOINTS) == set(POOLS)
    assert _flow(name, monkeypatch).name == load_flow(name).name  # one full name: FLOW/DEPLOYMENT
