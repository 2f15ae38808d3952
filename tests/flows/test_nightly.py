"""``genreflow nightly`` end to end: a real Prefect server and Dask workers; new tracks arrive, one file
is deleted, a night with nothing new starts no workers."""

from __future__ import annotations

import pandas as pd
import pytest
import soundfile as sf

from genreflow.pipeline.errors import CatalogueError
from genreflow.pipeline.store import StoreLayout, current_tracks, read_manifest
from tests.conftest import tone

pytestmark = pytest.mark.integration
TAGS = "musicnn-msd-tags"


@pytest.fixture
def started_runners(monkeypatch):
    """Every Dask task runner a flow asks for, counted (the real one is still started)."""
    from genreflow.flows import mapping

    started = []
    real = mapping.task_runner

    def counting(settings):
        started.append(settings)
        return real(settings)

    monkeypatch.setattr(mapping, "task_runner", counting)
    return started


def test_nights_ingest_score_retire_and_cost_nothing_when_nothing_is_new(tmp_path, settings, started_runners):
    from genreflow.flows.runtime import run_nightly

    drop = tmp_path / "drop"
    drop.mkdir()
    for i, freq in enumerate((220, 330, 440)):
        sf.write(drop / f"song{i}.wav", tone(4, freq=freq), 22050)
    store = str(tmp_path / "store")

    def night(**params):
        return run_nightly(settings, sources=[str(drop)], store=store, models=[TAGS], show_progress=False, **params)

    first = night()
    assert (first.new, first.failed, first.retired, first.scored) == (3, 0, 0, 3)
    assert set(first.ingests[0].feature_sets) >= {"mel128", "musicnn96"} and sum(first.labels.values()) == 3
    assert len(started_runners) == 1  # one set of workers for ingest's shards, the scoring and embedding chunks
    scores_dir = tmp_path / "store/scores" / f"model={TAGS}" / "version=musicnn-0.1.0"

    started_runners.clear()
    quiet = night()
    assert (quiet.new, quiet.scored, quiet.retired) == (0, 0, 0) and started_runners == []  # no worker, no model

    (drop / "song0.wav").unlink()
    sf.write(drop / "song3.wav", tone(4, freq=550), 22050)
    third = night()
    assert (third.new, third.retired, third.scored) == (1, 1, 1)
    manifest = read_manifest(StoreLayout(store))
    gone = manifest[manifest["uri"].str.endswith("song0.wav")]
    assert list(gone["status"]) == ["ok", "removed"]
    current = current_tracks(manifest)
    assert sorted(current["uri"].str.rsplit("/", n=1).str[-1]) == ["song1.wav", "song2.wav", "song3.wav"]
    scores = pd.read_parquet(scores_dir)
    assert sorted(scores["track_id"]) == sorted(current["track_id"])  # the deleted file's row is gone

    for path in drop.iterdir():
        path.unlink()
    with pytest.raises(CatalogueError, match="lists no audio files, but the store holds 3"):
        night()  # an empty listing looks like an outage: nothing is retired
    assert len(current_tracks(read_manifest(StoreLayout(store)))) == 3
    emptied = night(allow_empty_source=True)
    assert emptied.retired == 3 and list(scores_dir.glob("*.parquet")) == []  # no reader sees them any more


def test_a_night_without_a_promoted_model_stops_before_any_work(tmp_path, settings):
    from genreflow.flows.runtime import run_nightly
    from genreflow.pipeline.registry import RegistryError

    drop = tmp_path / "drop"
    drop.mkdir()
    sf.write(drop / "song.wav", tone(2), 22050)
    with pytest.raises(RegistryError, match="no model named 'genre'"):
        run_nightly(settings, sources=[str(drop)], store=str(tmp_path / "store"), show_progress=False)
    assert not (tmp_path / "store/manifest").exists()
