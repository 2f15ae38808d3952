"""Scoring without a model server: the Parquet shard files, the run plan, batching and windows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from genreflow.pipeline.audio import stream_blocks
from genreflow.pipeline.errors import DecodeError, ParameterError
from genreflow.pipeline.features import get_feature_set
from genreflow.pipeline.scoring import windows
from genreflow.pipeline.scoring.plan import plan_scoring, read_track_ids
from genreflow.pipeline.scoring.windows import TrackAverager, audio_patches
from genreflow.pipeline.store.scores import (
    SHARD_ROWS,
    ScoresLayout,
    probability_column,
    read_part,
    rewrite_part,
    scores_schema,
    scores_table,
)
from tests.conftest import tone

LABELS = ("rock", "Hip-Hop", "no vocals")
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _table(schema, ids, probabilities, *, at=T0):
    return scores_table(
        schema, track_ids=ids, uris=[f"/a/{i}.mp3" for i in ids], feature_set="musicnn96", scored_at=at,
        n_windows=[3] * len(ids), probabilities=np.asarray(probabilities, dtype=np.float32),
    )  # fmt: skip


def test_schema_names_columns_after_labels_and_records_them():
    schema = scores_schema("genre", "v1", LABELS)
    assert schema.names[-3:] == ["p_rock", "p_hip_hop", "p_no_vocals"]
    assert schema.metadata[b"genreflow.scores_schema"] == b"1" and b"Hip-Hop" in schema.metadata[b"genreflow.labels"]
    with pytest.raises(ParameterError, match="repeat"):
        scores_schema("genre", "v1", ("rock", "rock"))
    assert probability_column("  R&B ") == "p_r_b"


def test_labels_of_any_script_get_unique_columns_recorded_in_the_file(tmp_path):
    """Labels that are all non-Latin, or that normalise alike, still get one column each."""
    import duckdb
    import polars as pl

    labels = ("日本", "ジャズ", "Hip Hop", "hip-hop", "!!!")
    schema = scores_schema("genre", "v1", labels)
    assert schema.names[-5:] == ["p_日本", "p_ジャズ", "p_hip_hop", "p_hip_hop_2", "p_label4"]
    mapping = json.loads(schema.metadata[b"genreflow.columns"])
    assert mapping == dict(zip(labels, schema.names[-5:], strict=True))
    table = scores_table(schema, track_ids=["t"], uris=["/t.wav"], feature_set="musicnn96", scored_at=datetime.now(UTC),
                         n_windows=[1], probabilities=np.array([[0.1, 0.6, 0.1, 0.1, 0.1]]))  # fmt: skip
    pq.write_table(table, tmp_path / "part.parquet")
    assert pd.read_parquet(tmp_path / "part.parquet")["p_ジャズ"].iloc[0] == pytest.approx(0.6)
    assert duckdb.sql(f"SELECT \"p_ジャズ\" FROM '{tmp_path / 'part.parquet'}'").fetchall()[0][0] == pytest.approx(0.6)
    assert pl.read_parquet(tmp_path / "part.parquet")["p_日本"][0] == pytest.approx(0.1)


def test_table_ranks_labels_per_track():
    schema = scores_schema("genre", "v1", LABELS)
    table = _table(schema, ["a", "b"], [[0.2, 0.7, 0.1], [0.5, 0.2, 0.3]]).to_pylist()
    assert table[0]["label_top"] == "Hip-Hop" and table[0]["prob_top"] == pytest.approx(0.7)
    assert table[0]["top3"] == ["Hip-Hop", "rock", "no vocals"] and table[1]["top3"] == ["rock", "no vocals", "Hip-Hop"]
    assert table[1]["p_no_vocals"] == pytest.approx(0.3) and table[0]["model_version"] == "v1"


def test_rewrite_replaces_rows_drops_retired_and_removes_emptied_files(tmp_path):
    layout = ScoresLayout(str(tmp_path / "scores"))
    schema = scores_schema("genre", "v1", LABELS)
    rewrite_part(layout, "genre", "v1", 0, schema=schema, new_rows=_table(schema, ["b", "a"], [[1, 0, 0], [0, 1, 0]]))
    later = T0 + timedelta(days=1)
    rewrite_part(
        layout, "genre", "v1", 0, schema=schema, new_rows=_table(schema, ["c", "a"], [[0, 0, 1]] * 2, at=later)
    )
    rows = read_part(layout, "genre", "v1", 0).to_pylist()
    assert [r["track_id"] for r in rows] == ["a", "b", "c"]  # one row per track, sorted
    assert rows[0]["label_top"] == "no vocals" and rows[0]["scored_at"] == later  # the new row replaced the old
    part = tmp_path / "scores" / "model=genre" / "version=v1" / "part-000000.parquet"
    assert pq.read_schema(part).metadata[b"genreflow.model"] == b"genre"
    assert rewrite_part(layout, "genre", "v1", 0, schema=schema, drop=["b"]) == 2
    assert rewrite_part(layout, "genre", "v1", 0, schema=schema, drop=["a", "c"]) == 0
    assert not part.exists() and list(part.parent.iterdir()) == []  # no temporary files left either


def _manifest(rows):
    base = {"uri": None, "status": "ok", "error": None, "valid_s": 9.0, "feature_sets": ["musicnn96"], "row": 0}
    frame = pd.DataFrame([{**base, "uri": f"/a/{r['track_id']}.mp3", **r} for r in rows])
    return frame.astype({"row": "Int64"})


def _scored(rows):
    return pd.DataFrame(rows, columns=["track_id", "shard", "scored_at"])


def test_plan_scores_new_and_changed_tracks_and_retires_moved_rows():
    day = timedelta(days=1)
    manifest = _manifest([
        {"track_id": "kept", "row": 1, "ingested_at": T0},
        {"track_id": "moved", "row": 2, "ingested_at": T0},
        {"track_id": "fresh", "row": SHARD_ROWS + 5, "ingested_at": T0 + day},
        {"track_id": "moved", "row": SHARD_ROWS + 7, "ingested_at": T0 + 2 * day},  # re-ingested: a new row
        {"track_id": "broken", "row": None, "status": "failed", "error": "empty file (0 bytes)", "ingested_at": T0},
        {"track_id": "mel-only", "row": 9, "feature_sets": ["mel128"], "ingested_at": T0},
        {"track_id": "dupe", "row": None, "status": "skipped", "error": "duplicate", "ingested_at": T0 + 3 * day},
    ])  # fmt: skip
    edited = _manifest([
        {"track_id": "sha256:old", "uri": "/a/song.mp3", "row": 3, "ingested_at": T0},
        {"track_id": "sha256:new", "uri": "/a/song.mp3", "row": 4, "ingested_at": T0 + day},
    ])  # fmt: skip
    manifest = pd.concat([manifest, edited], ignore_index=True).sort_values("ingested_at", kind="stable")
    scored = _scored([("kept", 0, T0 + day), ("moved", 0, T0 + day), ("broken", 0, T0 - day), ("sha256:old", 0, T0)])
    plan = plan_scoring(manifest, scored, feature_sets=["musicnn96"])
    found = [(c.shard, [t.track_id for t in c.tracks]) for c in plan.chunks]
    assert found == [(0, ["sha256:new"]), (1, ["fresh", "moved"])]
    # moved to shard 1; content that now fails; an edited file's old content id
    assert plan.retire == {0: ["moved", "broken", "sha256:old"]}
    reasons = dict(zip(plan.failures["track_id"], plan.failures["reason"], strict=True))
    assert reasons["broken"] == "ingest failed: empty file (0 bytes)" and "--features musicnn96" in reasons["mel-only"]
    assert "dupe" not in reasons  # a skipped duplicate is not a track of its own

    everything = plan_scoring(manifest, scored, feature_sets=["musicnn96"], tracks="all")
    assert sorted(t.track_id for s in everything.chunks for t in s.tracks) == ["fresh", "kept", "moved", "sha256:new"]
    listed = plan_scoring(manifest, scored, feature_sets=["musicnn96"], tracks=["kept", "nope"])
    assert [t.track_id for s in listed.chunks for t in s.tracks] == ["kept"]
    assert listed.failures.set_index("track_id").loc["nope", "reason"] == "not in the store's manifest"
    chunked = plan_scoring(manifest, scored, feature_sets=["musicnn96"], tracks="all", chunk_size=1)
    assert [(c.index, c.shard, len(c.tracks)) for c in chunked.chunks] == [(0, 0, 1), (1, 0, 1), (2, 1, 1), (3, 1, 1)]
    with pytest.raises(ParameterError, match="tracks must be"):
        plan_scoring(manifest, scored, feature_sets=["musicnn96"], tracks="everything")


def test_track_id_files_skip_comments_and_a_missing_file_is_named(tmp_path):
    (tmp_path / "ids.txt").write_text("# re-score after the fix\ngtzan:blues.00001\n\n  fma:000002  # flagged\n")
    assert read_track_ids(str(tmp_path / "ids.txt")) == ["gtzan:blues.00001", "fma:000002"]
    with pytest.raises(ParameterError, match=r"nope\.txt"):
        read_track_ids(str(tmp_path / "nope.txt"))


def test_averager_batches_across_tracks_and_equals_per_track_means():
    rng = np.random.default_rng(0)
    tracks = {key: rng.normal(size=(n, 4, 5)).astype(np.float32) for key, n in (("a", 3), ("b", 7), ("c", 1))}
    batches = []

    def predict(patches):
        batches.append(len(patches[0]))
        return patches[0].mean(axis=2)  # (n, 4): a deterministic stand-in for a model

    averager = TrackAverager(predict, batch_size=4)
    for key, patches in tracks.items():
        averager.add(key, [patches])
    averager.add("gone", [rng.normal(size=(2, 4, 5)).astype(np.float32)])  # one of its patches is predicted now
    averager.discard("gone")  # its audio failed later: nothing of it may remain
    tracks["d"] = rng.normal(size=(2, 4, 5)).astype(np.float32)
    averager.add("d", [tracks["d"]])
    means = averager.means()
    assert batches == [4, 4, 4, 2] and set(means) == {"a", "b", "c", "d"}
    for key, patches in tracks.items():
        np.testing.assert_allclose(means[key], patches.mean(axis=2).mean(axis=0), rtol=1e-6)
    assert averager.counts["b"] == 7


def _patch_geometry():
    fs = get_feature_set("musicnn96")
    patch_s = 187 * fs.hop_length / fs.sample_rate
    return fs, patch_s, 94 * fs.hop_length / fs.sample_rate  # half a patch, in whole frames


def test_full_track_windows_cover_a_long_file_across_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(windows, "BLOCK_S", 10.0)  # several blocks without a long test file
    fs, patch_s, hop_s = _patch_geometry()
    signal = tone(35.0, sr=16000, freq=300) * np.linspace(0.2, 1.0, 35 * 16000, dtype=np.float32)
    sf.write(tmp_path / "long.wav", signal, 16000, subtype="FLOAT")
    blocks = list(audio_patches(str(tmp_path / "long.wav"), ["musicnn96"], [187]))
    patches = np.concatenate([b[0] for b in blocks])
    assert len(blocks) >= 3 and len(patches) == int((35.0 - patch_s) // hop_s) + 1
    whole = fs.compute(signal, sr=16000)  # features of the whole signal at once
    for index, patch in enumerate(patches):  # equal to the whole signal's features, block edges included
        np.testing.assert_allclose(patch, whole[:, index * 94 : index * 94 + 187], atol=1e-4, err_msg=str(index))


def test_full_track_short_file_gives_one_padded_window_and_bad_files_raise(tmp_path):
    sf.write(tmp_path / "short.flac", tone(1.2, sr=44100, channels=2), 44100)
    blocks = list(audio_patches(str(tmp_path / "short.flac"), ["mel128", "wavelet"], [130, 130]))
    assert len(blocks) == 1 and blocks[0][0].shape == (1, 128, 130) and blocks[0][1].shape[0] == 1
    (tmp_path / "noise.mp3").write_bytes(b"not audio at all" * 64)
    with pytest.raises(DecodeError):
        list(audio_patches(str(tmp_path / "noise.mp3"), ["musicnn96"], [187]))
    sf.write(tmp_path / "tiny.wav", np.zeros(0, np.float32), 8000)
    with pytest.raises(DecodeError, match="no audio"):
        list(stream_blocks(str(tmp_path / "tiny.wav"), block_s=5, overlap_s=1))


def test_stream_blocks_overlap_and_flag_the_last(tmp_path):
    signal = np.arange(25 * 100, dtype=np.float32) / 1e4
    sf.write(tmp_path / "ramp.wav", signal, 100, subtype="FLOAT")
    blocks = list(stream_blocks(str(tmp_path / "ramp.wav"), block_s=10, overlap_s=2))
    assert [(b.start, b.samples.shape[1], b.last) for b in blocks] == [
        (0, 1200, False),
        (1000, 1200, False),
        (2000, 500, True),
    ]
    np.testing.assert_array_equal(blocks[1].samples[0], signal[1000:2200])
