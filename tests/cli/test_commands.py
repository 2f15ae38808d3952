"""Commands as a user runs them: exit codes, one-line errors, ``predict``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from genreflow.pipeline.models.musicnn import MSD_TAGS
from tests.conftest import tone

pytestmark = pytest.mark.integration
TAGS = "musicnn-msd-tags"


def test_ingest_exit_codes(tmp_path, settings):
    source = tmp_path / "lib"
    (source / "rock").mkdir(parents=True)
    sf.write(source / "rock/good.wav", tone(2), 22050)
    command = [
        sys.executable,
        "-m",
        "genreflow.cli",
        "ingest",
        str(source),
        "--store",
        str(tmp_path / "s"),
        "--workers",
        "1",
        "--dataset",
        "unlabelled",
    ]
    ok = subprocess.run(command, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    sf.write(source / "rock/silent.wav", np.zeros(44100, np.float32), 22050)
    failed = subprocess.run(command, capture_output=True, text=True)
    assert failed.returncode == 1 and "silent" in failed.stdout
    bad = subprocess.run([*command[:4], "/nonexistent", "--store", str(tmp_path / "s")], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "/nonexistent" in bad.stderr


def test_predict_prints_top_labels_and_names_bad_files(tmp_path, capsys):
    from genreflow.cli import main

    sf.write(tmp_path / "song.wav", tone(8, freq=330, sr=44100, channels=2), 44100)
    (tmp_path / "broken.mp3").write_bytes(b"ID3 nothing else")
    status = main(["predict", str(tmp_path / "song.wav"), str(tmp_path / "broken.mp3"), "--model", TAGS, "--json"])
    out, err = capsys.readouterr()
    assert status == 1 and "broken.mp3" in err
    [line] = out.strip().splitlines()
    result = json.loads(line)
    assert result["model"] == f"{TAGS}@musicnn-0.1.0" and result["n_windows"] == int((8 - 2.992) // 1.504) + 1
    assert len(result["top"]) == 3 and {t["label"] for t in result["top"]} <= set(MSD_TAGS)
    probabilities = [t["probability"] for t in result["top"]]
    assert probabilities == sorted(probabilities, reverse=True)
    assert main(["predict", str(tmp_path / "song.wav")]) == 2  # a registered model needs the store holding it
    assert "--store" in capsys.readouterr().err


def test_a_second_writer_exits_3_naming_the_run_that_holds_the_store(tmp_path):
    from genreflow.pipeline.store import StoreLayout
    from genreflow.pipeline.store.lease import acquire_lease

    (tmp_path / "lib").mkdir()
    sf.write(tmp_path / "lib/song.wav", tone(2), 22050)
    store = str(tmp_path / "store")
    genreflow = [sys.executable, "-m", "genreflow.cli"]
    ingest = [*genreflow, "ingest", str(tmp_path / "lib"), "--store", store, "--workers", "1"]
    with acquire_lease(StoreLayout(store), holder="ingest of another night"):
        held = subprocess.run(ingest, capture_output=True, text=True, timeout=300)
        waited = subprocess.run([*ingest, "--wait", "1"], capture_output=True, text=True, timeout=300)
        promote = subprocess.run([*genreflow, "models", "promote", "genre", "--store", store],
                                 capture_output=True, text=True, timeout=300)  # fmt: skip
    for refused in (held, waited, promote):
        assert refused.returncode == 3 and "Traceback" not in refused.stderr, refused.stderr
        [line] = refused.stderr.splitlines()
        assert "'ingest of another night'" in line and f"pid {os.getpid()}" in line
    assert "after waiting 1 s" in waited.stderr and not (tmp_path / "store/manifest").exists()
    done = subprocess.run(ingest, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr  # released: the next run writes


def test_outputs_that_cannot_be_written_are_refused_before_any_work(tmp_path, capsys):
    from genreflow.cli import main
    from genreflow.pipeline.store import StoreLayout, write_manifest_part
    from genreflow.pipeline.store.manifest import MANIFEST_SCHEMA

    store = tmp_path / "store"
    row = {name: None for name in MANIFEST_SCHEMA.names} | {"uri": "/a.wav", "track_id": "a", "status": "ok"}
    write_manifest_part(StoreLayout(str(store)), "r1", [row])
    (tmp_path / "taken").write_text("an existing file")
    for argv, named in (
        (["score", "--store", str(store), "--out", str(tmp_path / "taken")], "--out"),
        (["score", "--store", str(store), "--out", str(tmp_path / "taken/scores")], "--out"),
        (["ingest", str(tmp_path), "--store", str(tmp_path / "taken")], "store"),
    ):
        assert main(argv) == 2
        [line] = capsys.readouterr().err.splitlines()
        assert f"{named} " in line and str(tmp_path / "taken") in line, line
