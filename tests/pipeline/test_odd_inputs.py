"""Odd files get a reason a person understands, and odd spellings of a source are one source."""

from __future__ import annotations

import os

import numpy as np
import soundfile as sf

from genreflow.pipeline.audio import ClipWindow
from genreflow.pipeline.datasets import scan_catalogue, source_uri
from genreflow.pipeline.extract import TrackRef, load_track
from tests.conftest import tone
from tests.corpus import png_bytes


def _reason(path) -> str | None:
    ref = TrackRef(uri=str(path), dataset="unlabelled", size_bytes=os.path.getsize(path) if os.path.exists(path)
                   else 0, source_version="v1")  # fmt: skip
    return load_track(ref, window=ClipWindow(seconds=4.0))[2]


def test_files_that_are_not_audio_say_what_they_are(tmp_path):
    (tmp_path / "cover.wav").write_bytes(png_bytes())
    (tmp_path / "notes.mp3").write_text("track list:\n1. intro\n2. outro\n")
    (tmp_path / "page.flac").write_text("<!DOCTYPE html><html><body>404</body></html>")
    assert _reason(tmp_path / "cover.wav") == "not audio: the file is a PNG image"
    assert _reason(tmp_path / "notes.mp3") == "not audio: the file is a text file"
    assert _reason(tmp_path / "page.flac") == "not audio: the file is an HTML page"


def test_a_broken_symlink_says_so(tmp_path):
    os.symlink(tmp_path / "gone.wav", tmp_path / "link.wav")
    assert _reason(tmp_path / "link.wav") == f"broken symbolic link: its target {tmp_path / 'gone.wav'} does not exist"


def test_unlabelled_files_without_an_extension_are_listed_and_decoded_by_content(tmp_path):
    (tmp_path / "lib").mkdir()
    sf.write(tmp_path / "lib/track01", tone(2), 22050, format="WAV")
    (tmp_path / "lib/.DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (tmp_path / "lib/cover.jpg").write_bytes(b"\xff\xd8\xff\xe0")
    catalogue = scan_catalogue(str(tmp_path / "lib"), dataset="unlabelled")
    assert [uri.rsplit("/", 1)[1] for uri in catalogue["uri"]] == ["track01"]
    assert _reason(tmp_path / "lib/track01") is None
    (tmp_path / "lib/rock").mkdir()
    (tmp_path / "lib/jazz").mkdir()
    sf.write(tmp_path / "lib/rock/a.wav", tone(1), 22050)
    sf.write(tmp_path / "lib/jazz/b.wav", tone(1), 22050)
    (tmp_path / "lib/track01").rename(tmp_path / "LICENSE")  # a folder per label, a licence beside it
    (tmp_path / "lib/LICENSE").write_text("CC-BY")
    folders = scan_catalogue(str(tmp_path / "lib"))  # auto: still a folder per label
    assert sorted(folders["label"]) == ["jazz", "rock"]


def test_a_source_spelled_with_dot_dot_is_the_same_source(tmp_path):
    (tmp_path / "lib").mkdir()
    sf.write(tmp_path / "lib/a.wav", np.zeros(22050, np.float32) + 0.1, 22050)
    plain = scan_catalogue(str(tmp_path / "lib"), dataset="unlabelled")
    odd = scan_catalogue(str(tmp_path / "lib/../lib"), dataset="unlabelled")
    assert list(odd["uri"]) == list(plain["uri"]) == [str(tmp_path / "lib/a.wav")]
    assert source_uri(str(tmp_path / "lib/../lib/")) == str(tmp_path / "lib")
