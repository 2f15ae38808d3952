"""The path a new user walks, tried as they would: default flags that fit together, one line per mistake."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from genreflow.pipeline.demo import make_demo_catalogue

pytestmark = pytest.mark.integration
REPOSITORY = Path(__file__).resolve().parents[2]


def _genreflow(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "genreflow.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def gtzan(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("newcomer") / "gtzan"
    make_demo_catalogue(root, per_class=4, seconds=4.0, seed=2, broken=False)
    return root


def test_ingest_by_default_stores_what_train_and_score_need_by_default(gtzan, tmp_path, settings):
    """`genreflow ingest DIR --store S` then `genreflow train --store S`: the default model's inputs are stored."""
    from genreflow.flows.runtime import run_ingest
    from genreflow.pipeline.models.architectures import backbone_candidates, get_architecture
    from genreflow.pipeline.scoring.scorers import ZERO_SHOT
    from genreflow.pipeline.store import StoreLayout
    from genreflow.pipeline.training.config import DEFAULT_ARCHITECTURE
    from genreflow.pipeline.training.data import labelled_tracks

    summary = run_ingest(settings, source=str(gtzan), store=str(tmp_path / "store"), show_progress=False)
    candidates = backbone_candidates(DEFAULT_ARCHITECTURE)  # `auto`: every probe it compares
    needed = {
        *(name for arch in candidates for name in arch.inputs),
        *(get_architecture(n).inputs[0] for n in ZERO_SHOT.values()),
    }
    assert needed <= set(summary.feature_sets) and summary.counts == {"ok": 4 * 7}
    data = labelled_tracks(StoreLayout(str(tmp_path / "store")), candidates[0].inputs)
    assert len(data.classes) == 7 and len(data.table) == 4 * 7


def test_a_user_error_inside_a_flow_is_one_line_exit_2_without_traceback(gtzan, tmp_path):
    mel_only = tmp_path / "mel-only"
    ingested = _genreflow("ingest", str(gtzan), "--store", str(mel_only), "--features", "mel128", "--workers", "1")
    assert ingested.returncode == 0, ingested.stderr
    train = _genreflow("train", "--store", str(mel_only))  # raised inside the training task
    assert (train.returncode, train.stdout) == (2, "")
    [line] = train.stderr.splitlines()
    assert line.startswith("genreflow: error: ") and "musicnn96" in line and "--features mel128,musicnn96" in line

    (gtzan / "train_filtered.txt").write_text("not a GTZAN name\n")  # raised inside the scan task
    for split in ("valid", "test"):
        (gtzan / f"{split}_filtered.txt").write_text("")
    try:
        ingest = _genreflow("ingest", str(gtzan), "--store", str(tmp_path / "other"), "--workers", "1")
    finally:
        for split in ("train", "valid", "test"):
            (gtzan / f"{split}_filtered.txt").unlink()
    assert ingest.returncode == 2 and "Traceback" not in ingest.stderr
    [line] = ingest.stderr.splitlines()
    assert "train_filtered.txt, line 1" in line


def test_help_says_what_is_required_and_shows_each_default_from_its_owner():
    from genreflow.pipeline.ingest_config import DEFAULT_FEATURE_SETS, DEFAULT_SHARD_SIZE
    from genreflow.pipeline.training.config import TrainConfig

    train = _genreflow("train", "--help").stdout
    assert re.search(r"--store STORE\s+store root.*required", train, re.S) and "default inside" not in train
    assert f"(default {TrainConfig.epochs})" in train
    ingest = " ".join(_genreflow("ingest", "--help").stdout.split())
    assert f"(default {','.join(DEFAULT_FEATURE_SETS)})" in ingest and f"(default {DEFAULT_SHARD_SIZE})" in ingest
    ignored = _genreflow("bench", "ingest", "--store", "/tmp/unused")  # benches make their own stores
    assert ignored.returncode == 2 and "unrecognized arguments: --store" in ignored.stderr


def test_documents_the_project_cites_are_in_the_repository():
    """A user who clones genreflow has the repository only: no design notes beside it."""
    cited = set(re.findall(r"[\w./-]+\.md\b", (REPOSITORY / "pyproject.toml").read_text()))
    cited |= set(re.findall(r"\]\(([\w./-]+\.md)\)", (REPOSITORY / "README.md").read_text()))
    assert "docs/DESIGN.md" in cited and all((REPOSITORY / path).is_file() for path in cited), cited
