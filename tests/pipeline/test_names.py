"""Names that become paths cannot escape the store, and a mistake is one line naming the argument."""

from __future__ import annotations

import os
import re

import pytest

from genreflow.cli import main
from genreflow.pipeline import registry
from genreflow.pipeline.errors import ParameterError
from genreflow.pipeline.names import check_name, split_spec
from genreflow.pipeline.store import StoreLayout

HOSTILE = ["../../elsewhere", "a/b", "My Genre", "", ".hidden", "..", "genre\n", "c:\\x", "/abs"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused(name):
    with pytest.raises(ParameterError, match="is not allowed"):
        check_name(name)


def test_safe_names_and_specs_pass():
    assert check_name("genre-2026.v1_b") == "genre-2026.v1_b"
    assert split_spec("genre@20261122T053000123456Z") == ("genre", "20261122T053000123456Z")
    assert split_spec("musicnn-msd-tags@musicnn-0.1.0") == ("musicnn-msd-tags", "musicnn-0.1.0")
    with pytest.raises(ParameterError, match=re.escape("model version '../../x'")):
        split_spec("genre@../../x")


def _tree(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, files in os.walk(root) for f in files)


@pytest.mark.parametrize("name", ["../../elsewhere", "a/b", ""])
def test_the_registry_writes_nothing_outside_the_store(tmp_path, name):
    (tmp_path / "store").mkdir()
    staged = tmp_path / "staged"
    staged.mkdir()
    (staged / "model.keras").write_bytes(b"x")
    before = _tree(tmp_path)
    with pytest.raises(ParameterError):
        registry.register(StoreLayout(str(tmp_path / "store")), name, staged, {"metrics": {}})
    assert _tree(tmp_path) == before


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--store", "S", "--model", "../../x"],
        ["score", "--store", "S", "--model", "a/b"],
        ["models", "promote", "genre@../x", "--store", "S"],
        ["predict", "song.wav", "--model", "My Genre"],
        ["nightly", "src", "--store", "S", "--model", ""],
    ],
)
def test_every_command_refuses_them_in_one_line_before_any_work(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    [line] = capsys.readouterr().err.splitlines()
    assert exited.value.code == 2 and "is not allowed" in line and "--help" in line
