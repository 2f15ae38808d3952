"""Embeddings end to end with a real Prefect server: nights keep them and their index current (a new
track appears, a deleted one disappears, a night with nothing new writes nothing), and a registered
model's embedding is the layer its head reads."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from genreflow.pipeline.store import StoreLayout, current_tracks, read_manifest
from tests.conftest import tone

pytestmark = pytest.mark.integration
TAGS = "musicnn-msd-tags"
TAGS_DIR = f"model={TAGS}/version=musicnn-0.1.0"


def _files(folder: Path) -> dict[str, int]:
    """Every file of a version folder with its modification time (ns): what a run wrote."""
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.iterdir())}


def test_nights_embed_new_tracks_retire_deleted_ones_and_write_nothing_when_nothing_changed(tmp_path, settings):
    from genreflow.flows.nightly import nightly_flow
    from genreflow.pipeline.embeddings.similar import find_similar

    drop = tmp_path / "drop"
    drop.mkdir()
    for i, freq in enumerate((220, 330, 440)):
        sf.write(drop / f"song{i}.wav", tone(4, freq=freq), 22050)
    store = str(tmp_path / "store")
    layout = StoreLayout(store)

    def night():  # settings=None: every step in this process's threads, no Dask worker to start
        return nightly_flow([str(drop)], store, models=[TAGS], settings=None, show_progress=False)

    first = night()
    assert (first.new, first.scored, first.embedded, first.failed) == (3, 3, 3, 0)
    embedding = first.embedding
    assert (embedding.dim, embedding.index.kind, embedding.index.tracks, embedding.index.rebuilt) == (
        200,
        "exact",
        3,
        True,
    )
    folder = tmp_path / "store/embeddings" / TAGS_DIR
    table = pq.read_table(folder / "part-000000.parquet").to_pandas()
    assert len(table) == 3 and (table["n_windows"] == 1).all()
    np.testing.assert_allclose(np.linalg.norm(np.stack(table["embedding"]), axis=1), 1.0, rtol=1e-5)
    written = _files(folder)
    assert set(written) == {"part-000000.parquet", "_index.arrow"}

    quiet = night()
    assert (quiet.new, quiet.embedded, quiet.embedding.changed, quiet.embedding.index.rebuilt) == (0, 0, False, False)
    assert quiet.embedding.index.tracks == 3 and _files(folder) == written  # not one file touched

    (drop / "song0.wav").unlink()
    sf.write(drop / "song3.wav", tone(4, freq=550), 22050)
    third = night()
    assert (third.new, third.retired, third.embedded, third.embedding.retired) == (1, 1, 1, 1)
    assert third.embedding.index.rebuilt and third.embedding.index.tracks == 3
    current = current_tracks(read_manifest(layout)).set_index("uri")["track_id"]
    stored = pq.read_table(folder / "part-000000.parquet")["track_id"].to_pylist()
    assert sorted(stored) == sorted(current)  # the new track is in, the deleted one is out
    new_id = current[str(drop / "song3.wav")]
    like_new = find_similar(layout, str(drop / "song3.wav"), model=TAGS, k=5)
    assert like_new.kind == "file" and like_new.neighbours[0].track_id == new_id  # a catalogue file finds itself
    assert like_new.neighbours[0].similarity > 0.99 and len(like_new.neighbours) == 3
    by_id = find_similar(layout, current[str(drop / "song1.wav")], model=TAGS, k=5)
    assert by_id.kind == "track" and {n.track_id for n in by_id.neighbours} == set(current) - {by_id.query}


def test_a_registered_model_embeds_with_the_layer_its_head_reads(tmp_path, settings):
    import keras

    from genreflow.flows.embed import embed_flow
    from genreflow.flows.ingest import ingest_flow
    from genreflow.pipeline import registry
    from genreflow.pipeline.store.features import open_features

    source, store = tmp_path / "library", str(tmp_path / "store")
    for i, label in enumerate(["rock", "jazz"]):
        (source / label).mkdir(parents=True)
        sf.write(source / label / f"t{i}.wav", tone(4, freq=300 + 200 * i), 22050)
    ingest_flow(str(source), store, dataset="folder", feature_sets=["musicnn96"], settings=None, show_progress=False)
    layout = StoreLayout(store)
    patches = keras.Input((96, 187), name="musicnn96")
    pooled = keras.layers.GlobalAveragePooling1D(name="embedding")(keras.layers.Permute((2, 1))(patches))
    with tempfile.TemporaryDirectory() as staged:
        keras.Model(patches, keras.layers.Dense(2, activation="softmax")(pooled)).save(Path(staged) / "model.keras")
        (Path(staged) / "labels.json").write_text(json.dumps(["jazz", "rock"]))
        card = {"architecture": "pooled-test", "data": {"feature_sets": ["musicnn96"], "patch_frames": [187]}}
        ref = registry.register(layout, "genre", Path(staged), card)

    summary = embed_flow(store, settings=None, show_progress=False)  # the default model: genre
    assert (summary.model, summary.version, summary.embedded, summary.dim) == ("genre", ref.version, 2, 96)
    table = pq.read_table(Path(summary.embeddings) / "part-000000.parquet").to_pandas().set_index("track_id")
    data = open_features(layout)["musicnn96"]["data"]
    for track in current_tracks(read_manifest(layout)).itertuples():
        mean = np.asarray(data[int(track.row)], dtype=np.float32)[:, :187].mean(axis=1)  # one 3-s patch of 4 s
        np.testing.assert_allclose(table.loc[track.track_id, "embedding"], mean / np.linalg.norm(mean), atol=1e-4)
    again = embed_flow(store, tracks="all", settings=None, show_progress=False)
    assert again.embedded == 2 and again.index.rebuilt  # rewritten files: a new index
