"""``genreflow embed`` and ``genreflow similar`` as a user runs them: the index answers a file with the track
it is, a track id with the others, and bad arguments are one line with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import soundfile as sf

from tests.conftest import tone

pytestmark = pytest.mark.integration
TAGS = "musicnn-msd-tags"


def test_bad_k_or_a_store_without_embeddings_is_refused_in_one_line(tmp_path, capsys):
    from genreflow.cli import main

    for k in ("0", "-3", "ten"):
        bad = subprocess.run([sys.executable, "-m", "genreflow.cli", "similar", "some:track", "--store", str(tmp_path),
                              "--k", k], capture_output=True, text=True, timeout=120)  # fmt: skip
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
        assert "--k" in bad.stderr and f"got '{k}'" in bad.stderr and bad.stdout == ""
    assert main(["similar", "some:track", "--store", str(tmp_path), "--model", TAGS]) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1 and "no embeddings of musicnn-msd-tags@musicnn-0.1.0" in err and "genreflow embed" in err
    )


def test_similar_finds_a_catalogue_file_first_and_a_track_s_others(tmp_path, capsys, settings):
    from genreflow.cli import main
    from genreflow.flows.embed import embed_flow
    from genreflow.flows.ingest import ingest_flow

    drop, store = tmp_path / "drop", str(tmp_path / "store")
    drop.mkdir()
    assert main(["embed", "--store", store, "--model", TAGS]) == 2  # nothing ingested: refused before any work
    assert "no tracks" in capsys.readouterr().err
    for i, freq in enumerate((200, 400, 800, 1600)):
        sf.write(drop / f"s{i}.wav", tone(4, freq=freq), 22050)
    ingest_flow(str(drop), store, dataset="unlabelled", feature_sets=["musicnn96"], settings=None, show_progress=False)
    summary = embed_flow(store, model=TAGS, settings=None, show_progress=False)  # in this process: no worker start
    assert (summary.embedded, summary.dim, summary.index.kind, summary.index.tracks) == (4, 200, "exact", 4)

    assert main(["similar", str(drop / "s2.wav"), "--store", store, "--model", TAGS, "--k", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    [first, second] = result["neighbours"]
    assert result["kind"] == "file" and first["uri"] == str(drop / "s2.wav") and first["similarity"] > 0.99
    assert second["similarity"] < first["similarity"]
    assert main(["similar", first["track_id"], "--store", store, "--model", TAGS]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"tracks like {first['track_id']} (track)" in lines[0] and len(lines) == 1 + 3  # the other three
    assert first["track_id"] not in "\n".join(lines[1:])
