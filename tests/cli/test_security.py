"""Security as a user meets it: credentials never leave the environment they were given in, and a model
file cannot run code.

The commands run for real (subprocesses of the CLI, moto's S3 server, the tests' Prefect server), then
everything genreflow wrote is read back, decoded where it is compressed (Parquet, Zarr, ``.keras``),
and searched for the secret.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
import soundfile as sf

from genreflow.pipeline.demo import make_demo_catalogue
from tests import reliability
from tests.conftest import tone
from tests.services import HOME

pytestmark = pytest.mark.integration
KEY_ID = "AKIAGENREFLOWLEAKTEST"
SECRET = "gEnReFlOw/lEaK+tEsT/sEcReT0123456789abcd"
TAGS = "musicnn-msd-tags"


def _genreflow(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "genreflow.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


def _decoded(name: str, data: bytes) -> str:
    """What a file says once decompressed: Parquet rows and metadata, ``.keras`` members, else the bytes."""
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(data))
        return f"{table.schema.metadata}{table.to_pylist()}"
    if name.endswith(".keras"):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "".join(archive.read(member).decode("latin-1") for member in archive.namelist())
    return data.decode("latin-1")


def _prefect_records(since: datetime) -> str:
    """The parameters, artifacts and every log line of the flow runs started ``since``, from the
    Prefect server the commands reported to."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterStartTime,
        LogFilter,
        LogFilterFlowRunId,
    )

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=since)))
        ids = [run.id for run in runs]
        artifacts = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))
        logs: list[str] = []
        while page := client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)), offset=len(logs)):
            logs += [log.message for log in page]
    records = {
        "parameters": [run.parameters for run in runs],
        "artifacts": [artifact.model_dump(mode="json") for artifact in artifacts],
        "logs": logs,
    }
    return json.dumps(records, default=str)


@pytest.mark.reliability
def test_credentials_never_appear_in_output_store_or_prefect(tmp_path, s3_endpoint):
    import s3fs
    import zarr

    started = datetime.now(UTC)
    fs = s3fs.S3FileSystem(endpoint_url=s3_endpoint, key=KEY_ID, secret=SECRET)
    for bucket in ("leak-audio", "leak-store"):
        fs.mkdir(bucket)
    make_demo_catalogue(tmp_path / "lib", per_class=3, seconds=3.0, seed=7, broken=False)
    (tmp_path / "lib/genres/blues/blues.00099.wav").write_bytes(b"RIFF, then not a wave file")  # a failed track
    fs.put(str(tmp_path / "lib") + "/", "leak-audio/lib/", recursive=True)
    env = {**os.environ, "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET,
           "GENREFLOW_S3_ENDPOINT_URL": s3_endpoint}  # fmt: skip
    store = ["--store", "s3://leak-store/store", "--workers", "1"]
    commands = {  # what a user runs, and the exit code it ends with
        "nightly --verbose": (["nightly", "s3://leak-audio/lib", *store, "--model", TAGS, "--verbose"], 1),
        "missing source --verbose": (["ingest", "s3://leak-audio/nowhere", *store, "--verbose"], 2),
        "train": (["train", *store, "--backbone", "musicnn-msd-linear"], 0),
    }
    runs = {what: (_genreflow(*args, env=env), expected) for what, (args, expected) in commands.items()}
    for what, (run, expected) in runs.items():
        assert run.returncode == expected, f"{what}: {run.stdout}{run.stderr}"
    assert "Traceback" in runs["missing source --verbose"][0].stderr  # --verbose did print the traceback

    written = {f"stdout/stderr of {what}": run.stdout + run.stderr for what, (run, _) in runs.items()}
    objects = [path for path in fs.find("leak-store") if not path.rsplit("/", 1)[-1].isdigit()]  # not float chunks
    written |= {f"s3://{path}": _decoded(path, fs.cat_file(path)) for path in objects}
    features = zarr.open_group(fs.get_mapper("leak-store/store/features.zarr"), mode="r")
    written["track_id array"] = " ".join(map(str, features["track_id"][:]))
    written |= {str(path): _decoded(path.name, path.read_bytes()) for path in HOME.rglob("*") if path.is_file()}
    written["Prefect runs, artifacts, logs"] = _prefect_records(started)

    kinds = ("manifest/part-", "features.zarr/zarr.json", "/card.json", "/model.keras", "scores/model=", "prefect")
    assert all(any(kind in name for name in written) for kind in kinds), sorted(written)
    assert "s3://leak-store/store" in written["Prefect runs, artifacts, logs"]  # our runs are in what was read
    assert "blues.00099.wav" in written["Prefect runs, artifacts, logs"]  # and so is the failed-files artifact
    parts = [text for name, text in written.items() if "manifest/part-" in name]
    assert any("blues.00099.wav" in text for text in parts)  # compressed files were searched decoded
    assert "gtzan:blues.00000" in written["track_id array"]
    leaks = [name for name, text in written.items() if SECRET in text or KEY_ID in text]
    reliability.record(f"credentials in the environment ({len(written)} outputs searched)",
                       runs_completed=sum(run.returncode == expected for run, expected in runs.values()),
                       secrets_found=len(leaks))  # fmt: skip
    assert leaks == [], leaks


def _store_with_a_track(root: Path) -> str:
    """A store whose manifest lists one ok track: commands get past "nothing ingested" to their checks."""
    from genreflow.pipeline.store import StoreLayout, write_manifest_part
    from genreflow.pipeline.store.manifest import MANIFEST_SCHEMA

    row = {name: None for name in MANIFEST_SCHEMA.names} | {"uri": "/a.wav", "track_id": "a", "status": "ok", "row": 0}
    write_manifest_part(StoreLayout(str(root)), "r1", [row])
    return str(root)


@pytest.mark.parametrize(
    "argv",
    [
        ["ingest", f"s3://{KEY_ID}:{SECRET}@bucket/lib", "--store", "{store}"],
        ["ingest", "{lib}", "--store", f"s3://{KEY_ID}:{SECRET}@bucket/store"],
        ["ingest", "{lib}", "--store", "{store}", "--s3-endpoint-url", f"http://{KEY_ID}:{SECRET}@127.0.0.1:9"],
        ["score", "--store", "{store}", "--out", f"s3://{KEY_ID}:{SECRET}@bucket/scores"],
        ["models", "list", "--store", f"s3://{KEY_ID}@bucket/store"],
        ["models", "list", "--store", f"simplecache::s3://{KEY_ID}:{SECRET}@bucket/store"],
    ],
    ids=["source", "store", "endpoint", "out", "key-only", "chained"],
)
def test_credentials_in_a_uri_are_refused_in_one_line_that_masks_them(argv, tmp_path, capsys):
    from genreflow.cli import main

    (tmp_path / "lib").mkdir()
    store = _store_with_a_track(tmp_path / "store")
    before = sorted(tmp_path.rglob("*"))
    assert main([arg.format(lib=tmp_path / "lib", store=store) for arg in argv]) == 2
    out, err = capsys.readouterr()
    [line] = err.splitlines()
    assert "***@" in line and "credentials in a URI are refused" in line and "AWS_ACCESS_KEY_ID" in line, line
    assert KEY_ID not in out + err and SECRET not in out + err
    assert sorted(tmp_path.rglob("*")) == before  # refused before anything was written


@pytest.mark.parametrize(
    "uri",
    ["s3://bucket/key@2x.wav", "http://minio:9000", "http://[::1]:9000/x", "/data/a@b:c", "memory://store",
     "abfs://container@account.dfs.core.windows.net/store", "simplecache::s3://bucket/store"],
)  # fmt: skip
def test_uris_without_credentials_pass(uri):
    from genreflow.pipeline.uri import mask_credentials, refuse_credentials

    refuse_credentials(uri)
    assert mask_credentials(uri) == uri


def _keras_archive_with(path: Path, marker: Path) -> None:
    """A model whose Lambda layer writes ``marker`` whenever its code runs (Keras runs it while
    rebuilding the model on load, when not in safe mode)."""
    import keras

    writes_marker = eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).write_text('ran'), x)[1]")
    patches = keras.Input((96, 187), name="musicnn96")
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Lambda(writes_marker)(patches))
    keras.Model(patches, keras.layers.Dense(2, activation="softmax")(pooled)).save(path)
    marker.unlink()  # building the model ran it once


def test_a_registered_model_holding_code_is_refused_in_one_line_and_its_code_never_runs(tmp_path, capsys):
    import keras

    from genreflow.cli import main
    from genreflow.pipeline import registry
    from genreflow.pipeline.store import StoreLayout

    marker = tmp_path / "the-model-file-ran-code"
    staged = tmp_path / "staged"
    staged.mkdir()
    _keras_archive_with(staged / "model.keras", marker)
    (staged / "labels.json").write_text(json.dumps(["rock", "jazz"]))
    store = _store_with_a_track(tmp_path / "store")
    card = {"architecture": "hostile", "data": {"feature_sets": ["musicnn96"], "patch_frames": [187]}, "metrics": {}}
    ref = registry.register(StoreLayout(store), "hostile", staged, card)
    model_file = f"{store}/models/hostile/{ref.version}/model.keras"
    sf.write(tmp_path / "song.wav", tone(4), 22050)
    for argv in (
        ["score", "--store", store, "--model", "hostile", "--workers", "1"],
        ["predict", str(tmp_path / "song.wav"), "--model", "hostile", "--store", store],
        ["models", "show", "hostile", "--store", store],
        ["models", "promote", "hostile", "--store", store],
    ):
        assert main(argv) == 2, argv
        out, err = capsys.readouterr()
        [line] = err.splitlines()
        assert f"{model_file}: refused: its config holds a Lambda layer and a Python lambda" in line, line
        assert out == ""
    with pytest.raises(registry.RegistryError, match="Lambda layer"):
        registry.load_keras_file(model_file)
    assert not marker.exists() and not (Path(store) / "scores").exists()

    # Keras' own safe mode stops what genreflow's check does not know: a config naming os.system.
    with zipfile.ZipFile(staged / "model.keras") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    dense = next(layer for layer in config["config"]["layers"] if layer["class_name"] == "Dense")
    dense["config"]["activation"] = {"module": "os", "class_name": "system",
                                     "config": {"command": f"touch {marker}"}, "registered_name": None}  # fmt: skip
    config["config"]["layers"] = [layer for layer in config["config"]["layers"] if layer["class_name"] != "Lambda"]
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(tmp_path / "os-system.keras", "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(registry.RegistryError, match=r"os-system\.keras: cannot load in Keras safe mode: Could not"):
        registry.load_keras_file(tmp_path / "os-system.keras")
    assert not marker.exists()

    keras.saving.load_model(staged / "model.keras", safe_mode=False)  # the control: without safe mode it runs
    assert marker.read_text() == "ran"
