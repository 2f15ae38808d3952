"""Scoring end to end with a real Prefect server and Dask workers: Parquet on disk and on moto's
S3, idempotent re-runs, only new or changed tracks, failures beside the scores, full-track windows,
the downstream readers, and the ``predict`` command."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from genreflow.pipeline.demo import STYLES, make_demo_catalogue
from genreflow.pipeline.models.musicnn import MSD_TAGS, MTT_TAGS
from genreflow.pipeline.store import StoreLayout, read_manifest
from genreflow.pipeline.store.scores import probability_column
from tests.conftest import tone

pytestmark = pytest.mark.integration
TAGS = "musicnn-msd-tags"
TAGS_DIR = f"model={TAGS}/version=musicnn-0.1.0"
PER_CLASS = 3


def _score(settings, store, **params):
    from genreflow.flows.runtime import run_score

    return run_score(settings, store=store, show_progress=False, **params)


def _ingest(settings, source, store, **params):
    from genreflow.flows.runtime import run_ingest

    return run_ingest(settings, source=str(source), store=str(store), feature_sets=["musicnn96"],
                      show_progress=False, **params)  # fmt: skip


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory, settings):
    root = tmp_path_factory.mktemp("score-demo")
    make_demo_catalogue(root / "catalogue", per_class=PER_CLASS, seconds=9.0, seed=4)  # with 3 broken files
    summary = _ingest(settings, root / "catalogue", root / "store")
    assert summary.counts == {"ok": PER_CLASS * len(STYLES), "failed": 3}
    return str(root / "store")


def test_zero_shot_scores_are_complete_idempotent_and_readable_downstream(demo_store, settings):
    import duckdb
    import polars as pl
    import pyarrow.dataset as ds
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    n_ok = PER_CLASS * len(STYLES)
    first = _score(settings, demo_store, model=TAGS)
    assert (first.selected, first.scored, first.failed, first.unscorable) == (n_ok, n_ok, 0, 3)
    assert first.kind == "tags" and sum(first.top_labels.values()) == n_ok and first.n_patches == 3 * n_ok
    folder = Path(demo_store) / "scores" / TAGS_DIR
    part = folder / "part-000000.parquet"
    schema = pq.read_schema(part)
    assert schema.names[:9] == ["track_id", "uri", "model_version", "feature_set", "scored_at", "n_windows",
                                "label_top", "prob_top", "top3"]  # fmt: skip
    assert (
        len(schema.names) == 9 + len(MSD_TAGS) and "p_hip_hop" in schema.names and "p_female_vocalists" in schema.names
    )
    assert (
        schema.field("scored_at").type == pa.timestamp("us", tz="UTC") and schema.field("p_rock").type == pa.float32()
    )
    assert schema.field("top3").type == pa.list_(pa.string())
    assert schema.metadata[b"genreflow.scores_schema"] == b"1" and json.loads(
        schema.metadata[b"genreflow.labels"]
    ) == list(MSD_TAGS)
    table = pq.read_table(part).to_pandas()
    assert table["track_id"].is_unique and len(table) == n_ok and (table["n_windows"] == 3).all()
    assert table.apply(lambda r: r["prob_top"] == r[probability_column(r["label_top"])], axis=1).all()
    from genreflow.flows.demo import example_rows  # what `make demo` prints

    shown = example_rows(first.scores).splitlines()
    assert len(shown) == 5 and "label_top" in shown[1] and shown[2].split()[0] == table["track_id"].iloc[0]
    failures = pd.read_csv(folder / "_failures.csv")
    assert len(failures) == 3 and failures["reason"].str.startswith("ingest failed: ").all()
    assert {p.name for p in folder.iterdir()} == {"part-000000.parquet", "_failures.csv"}  # no temporary files

    before = part.read_bytes()
    nothing = _score(settings, demo_store, model=TAGS)
    assert (nothing.selected, nothing.scored) == (0, 0) and part.read_bytes() == before
    again = _score(settings, demo_store, model=TAGS, tracks="all")
    assert again.scored == n_ok
    rescored = pq.read_table(part).to_pandas()
    assert (rescored["scored_at"] > table["scored_at"]).all()
    pd.testing.assert_frame_equal(rescored.drop(columns="scored_at"), table.drop(columns="scored_at"))  # row for row

    root = str(Path(demo_store) / "scores")
    readers = {
        "pandas": lambda: pd.read_parquet(root),
        "pyarrow.dataset": lambda: ds.dataset(root, format="parquet", partitioning="hive").to_table().to_pandas(),
        "duckdb": lambda: duckdb.sql(f"FROM read_parquet('{root}/**/*.parquet', hive_partitioning = true)").df(),
        "polars": lambda: pl.read_parquet(f"{root}/**/*.parquet", hive_partitioning=True).to_pandas(),
    }  # fmt: skip
    for name, read in readers.items():
        frame = read()
        assert len(frame) == n_ok and set(frame["model"].astype(str)) == {TAGS}, name
        assert set(frame["version"].astype(str)) == {"musicnn-0.1.0"} and frame["p_rock"].dtype == np.float32, name
        assert list(frame["top3"].iloc[0]) == list(table.sort_values("track_id")["top3"].iloc[0]), name
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(like_="score-musicnn-msd-tags"))
        )
    assert {"score-musicnn-msd-tags-musicnn-0-1-0-labels", "score-musicnn-msd-tags-musicnn-0-1-0-summary"} <= {
        a.key for a in found
    }


def _register_pooling_model(layout: StoreLayout, labels: list[str], *, patch_hop: float | None = None) -> str:
    """A tiny classifier on musicnn96 patches, registered and promoted like a trained one (its card
    from before ``patch_hop`` existed unless one is given)."""
    import tempfile

    import keras

    from genreflow.pipeline import registry

    patches = keras.Input((96, 187), name="musicnn96")
    pooled = keras.layers.GlobalAveragePooling1D(name="embedding")(keras.layers.Permute((2, 1))(patches))
    model = keras.Model(patches, keras.layers.Dense(len(labels), activation="softmax")(pooled))
    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp) / "model.keras")
        (Path(tmp) / "labels.json").write_text(json.dumps(labels))
        card = {"architecture": "pooled-test", "data": {"feature_sets": ["musicnn96"], "patch_frames": [187]},
                "metrics": {"accuracy": 0.5, "top3_accuracy": 1.0, "macro_f1": 0.5}}  # fmt: skip
        if patch_hop is not None:
            card["config"] = {"patch_hop": patch_hop}
        ref = registry.register(layout, "genre", Path(tmp), card)
    return str(registry.promote(layout, f"genre@{ref.version}"))


def test_registered_model_scores_only_new_and_changed_tracks(tmp_path, settings):
    source, store = tmp_path / "library", tmp_path / "store"
    for i, label in enumerate(["rock", "rock", "jazz", "jazz"]):
        (source / label).mkdir(parents=True, exist_ok=True)
        sf.write(source / label / f"t{i}.wav", tone(4, freq=200 + 90 * i), 22050)
    assert _ingest(settings, source, store, dataset="folder").counts == {"ok": 4}
    spec = _register_pooling_model(StoreLayout(str(store)), ["jazz", "rock"], patch_hop=0.5)

    first = _score(settings, str(store), chunk_size=2)  # the default model: genre, its production version
    assert first.tasks == 2  # two chunks of one file: the flow writes it once both are back
    assert first.scored == 4 and f"{first.model}@{first.version}" == spec and first.kind == "classes"
    scores_dir = Path(first.scores)
    old = pq.read_table(scores_dir / "part-000000.parquet").to_pandas().set_index("uri")
    assert list(pq.read_schema(scores_dir / "part-000000.parquet").names[-2:]) == ["p_jazz", "p_rock"]
    np.testing.assert_allclose(old["p_jazz"] + old["p_rock"], 1.0, rtol=1e-5)

    changed = str(source / "rock" / "t0.wav")
    sf.write(changed, tone(4, freq=800), 22050)  # new content under the same name: a new content-hash id
    sf.write(source / "jazz" / "t9.wav", tone(5, freq=1000), 22050)
    assert _ingest(settings, source, store, dataset="folder").selected == 2
    second = _score(settings, str(store))
    assert (second.selected, second.scored) == (2, 2)
    new = pq.read_table(scores_dir / "part-000000.parquet").to_pandas()
    assert len(new) == 5 and new["track_id"].is_unique and new["uri"].is_unique  # the changed file's old row is gone
    # the card's patch hop (half a 3-s patch): the 5-s track averages patches at 0 and 1.5 s, 4-s tracks one
    assert new.set_index("uri")["n_windows"].to_dict() == {u: 2 if u.endswith("t9.wav") else 1 for u in new["uri"]}
    current = read_manifest(StoreLayout(str(store))).drop_duplicates("uri", keep="last")
    assert set(new["track_id"]) == set(current["track_id"])
    unchanged = new.set_index("uri").loc[old.index.drop(changed)]
    pd.testing.assert_series_equal(unchanged["scored_at"], old.loc[old.index.drop(changed), "scored_at"])


def test_a_corrupt_track_or_vanished_audio_fails_alone_and_full_track_covers_long_files(tmp_path, settings):
    from genreflow.pipeline.store.features import open_features

    source, store = tmp_path / "drop", tmp_path / "store"
    source.mkdir()
    for i in range(3):
        sf.write(source / f"short{i}.flac", tone(6, freq=300 + 200 * i, sr=44100), 44100)
    long_s = 200.0
    sf.write(source / "long take.mp3", tone(long_s, freq=440, sr=22050, channels=2), 22050)
    assert _ingest(settings, source, store, dataset="unlabelled").counts == {"ok": 4}
    manifest = read_manifest(StoreLayout(str(store))).set_index("uri")

    damaged = manifest.loc[str(source / "short1.flac")]  # its stored features become unreadable
    group = open_features(StoreLayout(str(store)), mode="r+")
    group["musicnn96"]["data"][int(damaged["row"])] = np.full(group["musicnn96"]["data"].shape[1:], np.nan)
    stored = _score(settings, str(store), model="musicnn-mtt-tags")
    assert (stored.selected, stored.scored, stored.failed) == (4, 3, 1)
    [failure] = stored.failures
    assert failure.track_id == damaged["track_id"] and "non-finite features" in failure.reason

    gone = source / "short2.flac"
    shutil.move(gone, tmp_path / "elsewhere.flac")
    full = _score(
        settings, str(store), model="musicnn-mtt-tags", tracks="all", full_track=True, out=str(tmp_path / "full")
    )
    assert (full.scored, full.failed) == (3, 1) and "audio not found" in full.failures[0].reason
    table = pd.read_parquet(tmp_path / "full").set_index("uri")
    hop_s, patch_s = 94 * 256 / 16000, 187 * 256 / 16000
    decoded_s = manifest.loc[str(source / "long take.mp3"), "duration_s"]  # MP3 pads to whole frames
    assert abs(decoded_s - long_s) < 0.1
    assert table.loc[str(source / "long take.mp3"), "n_windows"] == int((decoded_s - patch_s) // hop_s) + 1
    assert table.loc[str(source / "short1.flac"), "n_windows"] == int((6 - patch_s) // hop_s) + 1  # audio is fine
    assert len(
        pq.read_schema(
            tmp_path / "full" / "model=musicnn-mtt-tags" / "version=musicnn-0.1.0" / "part-000000.parquet"
        ).names
    ) == 9 + len(MTT_TAGS)

    shutil.move(tmp_path / "elsewhere.flac", gone)  # back again: the next run clears its failure
    (tmp_path / "ids.txt").write_text(manifest.loc[str(gone), "track_id"] + "\n")
    healed = _score(settings, str(store), model="musicnn-mtt-tags", tracks=str(tmp_path / "ids.txt"),
                    full_track=True, out=str(tmp_path / "full"))  # fmt: skip
    assert healed.scored == 1 and healed.failures == ()


def test_scores_on_s3_are_whole_objects(tmp_path, settings, s3_endpoint):
    import pyarrow.dataset as ds
    import s3fs

    fs = s3fs.S3FileSystem(endpoint_url=s3_endpoint)
    fs.mkdir("score-bucket")
    source = tmp_path / "drop"
    source.mkdir()
    for i in range(2):
        sf.write(source / f"s{i}.wav", tone(5, freq=250 * (i + 1)), 22050)
    (source / "broken.wav").write_bytes(b"RIFF not really")
    s3 = dataclasses.replace(settings, s3_endpoint_url=s3_endpoint)
    _ingest(s3, source, "s3://score-bucket/store", dataset="unlabelled")
    summary = _score(s3, "s3://score-bucket/store", model=TAGS, out="s3://score-bucket/published/scores")
    assert summary.scored == 2 and summary.unscorable == 1
    listing = fs.ls(f"score-bucket/published/scores/{TAGS_DIR}")
    assert sorted(p.rsplit("/", 1)[1] for p in listing) == ["_failures.csv", "part-000000.parquet"]
    dataset = ds.dataset("score-bucket/published/scores", filesystem=fs, format="parquet", partitioning="hive")
    assert dataset.to_table().num_rows == 2
    assert _score(s3, "s3://score-bucket/store", model=TAGS, out="s3://score-bucket/published/scores").selected == 0
