"""``genreflow doctor``: a real store (decoded, stored and committed by the ingest routines), damaged
one way at a time, is reported with one line naming the damage; ``--repair`` does the safe repairs."""

from __future__ import annotations

import json
import shutil
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import soundfile as sf

from genreflow.cli import main
from genreflow.pipeline import registry
from genreflow.pipeline.audio import ClipWindow
from genreflow.pipeline.datasets import scan_catalogue
from genreflow.pipeline.extract import ExtractionSpec, run_shard
from genreflow.pipeline.features import MEL128
from genreflow.pipeline.ingest import commit_run, plan_shards, select_work
from genreflow.pipeline.store import FeatureStore, StoreLayout, read_manifest, write_manifest_part
from genreflow.pipeline.store.doctor import check_store
from genreflow.pipeline.store.features import open_features
from genreflow.pipeline.store.lease import LeaseInfo
from genreflow.pipeline.store.manifest import MANIFEST_SCHEMA
from tests.conftest import tone

SPEC = ExtractionSpec((MEL128,), ClipWindow(seconds=2.0))


def _ingest(source: Path, layout: StoreLayout, run_id: str, *, commit: bool = True) -> None:
    """What the ingest flow does for one run, without Prefect: diff, allocate, run the shard, commit."""
    store = FeatureStore(layout)
    store.ensure(SPEC.feature_sets, window=SPEC.window, channel_views=("mid",))
    work = select_work(scan_catalogue(str(source)), read_manifest(layout), feature_sets=SPEC.feature_sets)
    [shard] = plan_shards(work, run_id=run_id, row_start=store.allocate(len(work)), rows_per_track=1, shard_size=64)
    rows = run_shard(shard, SPEC, layout).rows
    if commit:
        commit_run(layout, store, run_id, rows)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("doctor")
    for label, freq in (("rock", 220.0), ("jazz", 330.0)):
        (root / "src" / label).mkdir(parents=True)
        sf.write(root / "src" / label / f"{label}.wav", tone(2, freq=freq), 22050)
    _ingest(root / "src", StoreLayout(str(root / "store")), "r1")
    return root


@pytest.fixture
def layout(pristine, tmp_path) -> StoreLayout:
    shutil.copytree(pristine / "store", tmp_path / "store")
    return StoreLayout(str(tmp_path / "store"))


def _garbage_manifest_part(layout: StoreLayout) -> str:
    Path(layout.manifest_part("r0")).write_bytes(b"PAR1 then nothing a reader can use")
    return "part-r0.parquet: does not read"


def _ok_track_past_the_arrays(layout: StoreLayout) -> str:
    row = {name: None for name in MANIFEST_SCHEMA.names}
    row |= {"uri": "/gone.wav", "track_id": "ghost", "status": "ok", "row": 99, "ingested_at": datetime.now(UTC)}
    write_manifest_part(layout, "r9", [row])
    return "1 ok tracks have no row inside the 2 rows of the arrays (e.g. ghost row 99)"


def _track_id_row_names_another_track(layout: StoreLayout) -> str:
    open_features(layout, mode="a")["track_id"][0] = "someone-else"
    return "track_id: 1 ok tracks' rows name another track"


def _receipts_of_a_dead_run(layout: StoreLayout) -> str:
    source = Path(layout.root).parent / "more"
    (source / "rock").mkdir(parents=True)
    sf.write(source / "rock/new.wav", tone(2, freq=440), 22050)
    _ingest(source, layout, "r2", commit=False)  # decoded and stored, then the run died
    return "runs/r2: 1 shard receipts of a run interrupted before its commit"


def _lease_of_a_dead_run(layout: StoreLayout) -> str:
    then = datetime.now(UTC) - timedelta(hours=1)
    info = LeaseInfo("ingest r7", socket.gethostname(), 1, then, then + timedelta(minutes=1), 60.0, "token")
    Path(layout.lease).write_bytes(info.to_json())
    return "lease.json: held by a dead run: 'ingest r7'"


def _lease_that_does_not_parse(layout: StoreLayout) -> str:
    Path(layout.lease).write_text("{not json")
    return "lease.json: does not read"


def _pointer_to_no_version(layout: StoreLayout) -> str:
    Path(layout.model_dir("genre")).mkdir(parents=True)
    Path(layout.model_dir("genre"), "production").write_text("20990101T000000000000Z")
    return "genre/production: names version '20990101T000000000000Z', which is not a complete version"


def _model_file_that_is_not_a_model(layout: StoreLayout) -> str:
    staged = Path(layout.root).parent / "staged"
    staged.mkdir()
    (staged / "model.keras").write_bytes(b"half a model")
    (staged / "labels.json").write_text(json.dumps(["rock", "jazz"]))
    ref = registry.register(layout, "genre", staged, {"metrics": {}})
    return f"models/genre/{ref.version}/model.keras: not a Keras model archive"


def _score_file_that_does_not_read(layout: StoreLayout) -> str:
    folder = Path(layout.scores, "model=genre", "version=1")
    folder.mkdir(parents=True)
    (folder / "part-000000.parquet").write_bytes(b"truncated")
    return "scores/model=genre/version=1/part-000000.parquet: does not read"


DAMAGE = [
    _garbage_manifest_part,
    _ok_track_past_the_arrays,
    _track_id_row_names_another_track,
    _receipts_of_a_dead_run,
    _lease_of_a_dead_run,
    _lease_that_does_not_parse,
    _pointer_to_no_version,
    _model_file_that_is_not_a_model,
    _score_file_that_does_not_read,
]


def test_a_healthy_store_is_clean(layout, capsys):
    assert check_store(layout) == []
    assert main(["doctor", "--store", layout.root]) == 0
    assert capsys.readouterr().out == f"{layout.root}: no findings\n"


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda damage: damage.__name__.strip("_"))
def test_each_kind_of_damage_is_one_finding_and_exit_1(layout, damage, capsys):
    expected = damage(layout)
    [finding] = check_store(layout)
    assert expected in str(finding), str(finding)
    assert main(["doctor", "--store", layout.root]) == 1
    assert capsys.readouterr().out.splitlines() == [str(finding)]


def test_repair_commits_a_dead_runs_receipts_and_takes_over_its_lease(layout, capsys):
    _receipts_of_a_dead_run(layout)
    _lease_of_a_dead_run(layout)
    assert {f.kind for f in check_store(layout)} == {"receipts", "lease"}
    assert main(["doctor", "--store", layout.root, "--repair"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("repaired: took over the lease of 'ingest r7'")
    assert out[1:] == ["repaired: committed 1 rows of interrupted run r2", f"{layout.root}: no findings"]
    manifest = read_manifest(layout)
    assert sorted(manifest["uri"].str.rsplit("/", n=1).str[-1]) == ["jazz.wav", "new.wav", "rock.wav"]
    assert not Path(layout.lease).exists() and not Path(layout.runs, "r2").exists()


def test_repair_leaves_damaged_files_in_place(layout, capsys):
    expected = _garbage_manifest_part(layout)
    assert main(["doctor", "--store", layout.root, "--repair"]) == 1
    [line] = capsys.readouterr().out.splitlines()
    assert expected in line and Path(layout.manifest_part("r0")).exists()


def test_a_store_that_is_not_there_is_one_line_exit_2(tmp_path, capsys):
    assert main(["doctor", "--store", str(tmp_path / "typo")]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert f"{tmp_path / 'typo'}: no store here" in line
