"""Commands as a user runs them: exit codes, one-line errors, ``predict``."""

from __future__ import annotations

import json
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
