import dataclasses
import os

import numpy as np
import pandas as pd
import pytest

from genreflow.console import describe_ingest
from genreflow.pipeline.audio import ClipWindow, decode_clip
from genreflow.pipeline.datasets import scan_catalogue
from genreflow.pipeline.errors import ParameterError, StoreError
from genreflow.pipeline.extract import ExtractionSpec, compute_features, run_shard
from genreflow.pipeline.features import MEL128, WAVELET
from genreflow.pipeline.ingest import (
    LabelConflict,
    RunTally,
    commit_run,
    mark_duplicates,
    new_run_id,
    plan_batches,
    plan_shards,
    record_allocation,
    recover_interrupted_runs,
    select_work,
    vanished,
)
from genreflow.pipeline.store import (
    FeatureStore,
    FeatureWriter,
    RowRange,
    StoreLayout,
    read_manifest,
    read_rows,
    write_manifest_part,
)
from genreflow.pipeline.store.features import open_features
from genreflow.pipeline.store.manifest import MANIFEST_SCHEMA
from tests.conftest import tone

WINDOW = ClipWindow(seconds=4.0)


def _catalogue(tmp_path, write_audio):
    write_audio("src/rock/a.wav", tone(3, freq=220))
    write_audio("src/rock/b.flac", tone(5, sr=44100, freq=330, channels=2), 44100)
    write_audio("src/jazz/c.mp3", tone(2, freq=550), 22050)
    (tmp_path / "src/jazz/broken.wav").write_text("garbage" * 100)
    return scan_catalogue(str(tmp_path / "src"))


def _store(tmp_path, views=("mid",)):
    layout = StoreLayout(str(tmp_path / "store"))
    store = FeatureStore(layout)
    store.ensure([MEL128, WAVELET], window=WINDOW, channel_views=views)
    return layout, store


def test_shards_write_their_rows_and_zarr_equals_direct_features(tmp_path, write_audio):
    catalogue = _catalogue(tmp_path, write_audio)
    layout, store = _store(tmp_path, views=("mid", "left", "right"))
    spec = ExtractionSpec((MEL128, WAVELET), WINDOW, ("mid", "left", "right"))
    work = select_work(catalogue, read_manifest(layout), feature_sets=spec.feature_sets)
    shards = plan_shards(work, run_id="r1", row_start=store.allocate(len(work) * 3), rows_per_track=3, shard_size=3)
    assert [s.rows for s in shards] == [RowRange(0, 9), RowRange(9, 12)]
    rows = [row for shard in shards for row in run_shard(shard, spec, layout).rows]
    by_uri = {r["uri"].rsplit("/", 1)[-1]: r for r in rows}
    assert by_uri["broken.wav"]["status"] == "failed" and "not audio" in by_uri["broken.wav"]["error"]
    b = by_uri["b.flac"]
    assert b["status"] == "ok" and b["channels"] == 2 and b["sample_rate"] == 44100 and b["valid_s"] == 4.0
    expected = compute_features(decode_clip(str(tmp_path / "src/rock/b.flac"), window=WINDOW), spec)
    for name in ("mel128", "wavelet"):
        stored = read_rows(layout, name, slice(b["row"], b["row"] + 3)).astype(np.float32)
        np.testing.assert_allclose(stored, expected[name].astype(np.float16).astype(np.float32))
    short = by_uri["c.mp3"]
    assert short["valid_s"] == pytest.approx(2, abs=0.1)  # padded to the 4-s window, real length kept
    used = {r["row"] + v for r in rows if r["status"] == "ok" for v in range(3)}
    unused = sorted(set(range(12)) - used)
    assert len(unused) == 3  # the broken track's three view rows stay empty (NaN)
    assert np.isnan(read_rows(layout, "mel128", unused).astype(np.float32)).all()


def test_writer_refuses_rows_outside_its_range(tmp_path):
    layout, store = _store(tmp_path)
    store.allocate(4)
    writer = FeatureWriter(layout, RowRange(0, 2))
    values = np.zeros((1, 128, MEL128.n_frames(4 * 22050)), np.float32)
    writer.write("mel128", 1, values)
    with pytest.raises(StoreError, match="outside this shard's range"):
        writer.write("mel128", 2, values)


def test_writer_buffers_adjacent_rows_and_stores_them_on_flush(tmp_path):
    layout, store = _store(tmp_path)
    store.allocate(8)
    writer = FeatureWriter(layout, RowRange(0, 8), rows_per_write=2)
    n_frames = MEL128.n_frames(4 * 22050)
    values = {row: np.full((1, 128, n_frames), row, np.float32) for row in (0, 1, 2, 4, 6)}
    for row, block in values.items():  # rows 3 and 5 are a failed track's: never written
        writer.write("mel128", row, block)
    assert read_rows(layout, "mel128", [0, 1]).astype(np.float32).max() == 1  # a full block is stored at once
    assert np.isnan(read_rows(layout, "mel128", [6]).astype(np.float32)).all()  # still queued
    writer.flush()
    stored = read_rows(layout, "mel128", slice(0, 8)).astype(np.float32)
    for row in range(8):
        expected = float(row) if row in values else np.nan
        np.testing.assert_array_equal(stored[row], np.full((128, n_frames), expected, np.float32))


def test_store_rejects_other_settings_for_the_same_names(tmp_path):
    layout, store = _store(tmp_path)
    with pytest.raises(StoreError, match="bump the feature set"):
        store.ensure([dataclasses.replace(MEL128, n_mels=64)], window=WINDOW, channel_views=("mid",))
    with pytest.raises(StoreError, match="window_s"):
        FeatureStore(layout).ensure([MEL128], window=ClipWindow(seconds=30), channel_views=("mid",))


def test_select_work_diffs_against_the_manifest(tmp_path, write_audio):
    catalogue = _catalogue(tmp_path, write_audio)
    layout, store = _store(tmp_path)
    spec = ExtractionSpec((MEL128,), WINDOW)
    manifest = read_manifest(layout)
    assert set(select_work(catalogue, manifest, feature_sets=[MEL128])["reason"]) == {"new"}
    work = select_work(catalogue, manifest, feature_sets=[MEL128])
    [shard] = plan_shards(
        work, run_id=new_run_id(), row_start=store.allocate(len(work)), rows_per_track=1, shard_size=10
    )
    run_shard(shard, spec, layout)
    # a crash here: receipts written, nothing committed; recovery commits them
    recovered = recover_interrupted_runs(layout, store)
    assert list(recovered) == [shard.run_id] and {r["status"] for r in recovered[shard.run_id].rows} == {"ok", "failed"}
    manifest = read_manifest(layout)
    assert len(manifest) == 4 and set(manifest["status"]) == {"ok", "failed"}
    assert select_work(catalogue, manifest, feature_sets=[MEL128]).empty
    assert list(select_work(catalogue, manifest, feature_sets=[MEL128], retry_failed=True)["reason"]) == ["retry"]
    assert set(select_work(catalogue, manifest, feature_sets=[MEL128, WAVELET])["reason"]) == {"features"}
    changed = catalogue.copy()
    changed.loc[0, "source_version"] = "new-mtime"
    assert list(select_work(changed, manifest, feature_sets=[MEL128])["reason"]) == ["changed"]
    ids = open_features(layout)["track_id"][:]
    ok = manifest[manifest["status"] == "ok"]
    assert [ids[r] for r in ok["row"]] == list(ok["track_id"])


def test_a_run_killed_between_its_shards_leaves_its_unfinished_shards_rows_reported(tmp_path, write_audio):
    catalogue = _catalogue(tmp_path, write_audio)
    layout, store = _store(tmp_path)
    work = select_work(catalogue, read_manifest(layout), feature_sets=[MEL128])
    first, second = plan_shards(work, run_id="r1", row_start=store.allocate(4), rows_per_track=1, shard_size=3)
    record_allocation(layout, [first, second])
    run_shard(first, ExtractionSpec((MEL128,), WINDOW), layout)  # killed here: the second shard never ran
    recovered = recover_interrupted_runs(layout, store)
    [(run_id, run)] = recovered.items()
    assert (run_id, len(run.rows), run.unused_rows) == ("r1", 3, 1)
    tally = RunTally()
    tally.add_recovered(recovered)
    summary = tally.summary(**SUMMARY_FACTS)
    assert (summary.recovered_runs, summary.unused_rows, sum(summary.counts.values())) == (("r1",), 1, 3)
    assert "committed the finished shards of 1 interrupted run(s) (r1; counted above); their unfinished shards " \
           "left 1 store rows unused" in describe_ingest(summary)  # fmt: skip
    left = select_work(catalogue, read_manifest(layout), feature_sets=[MEL128])
    assert list(left["uri"]) == [second.tracks[0].uri]  # the next run decodes only what the dead run did not
    assert recover_interrupted_runs(layout, store) == {}  # committed once


def test_a_run_killed_after_writing_its_manifest_part_gets_its_track_ids_from_recovery(tmp_path, write_audio):
    layout, store = _store(tmp_path)
    work = select_work(_catalogue(tmp_path, write_audio), read_manifest(layout), feature_sets=[MEL128])
    [shard] = plan_shards(work, run_id="r1", row_start=store.allocate(4), rows_per_track=1, shard_size=4)
    rows = run_shard(shard, ExtractionSpec((MEL128,), WINDOW), layout).rows
    write_manifest_part(layout, "r1", rows)  # killed here: the part is written, the track ids are not
    assert not any(open_features(layout)["track_id"][:])
    assert recover_interrupted_runs(layout, store) == {}  # nothing to commit again ...
    ok = [r for r in rows if r["status"] == "ok"]
    ids = open_features(layout)["track_id"][:]
    assert len(ok) == 3 and [ids[r["row"]] for r in ok] == [r["track_id"] for r in ok]  # ... but the ids are there
    assert not (tmp_path / "store/runs/r1").exists()


def test_the_track_id_array_names_only_live_rows_after_a_file_changes_or_vanishes(tmp_path, write_audio):
    """A file read again (edited, or touched) or retired frees the row its earlier version held: a
    reader of the Zarr store alone never meets a track twice, or one its source no longer has."""
    catalogue = _catalogue(tmp_path, write_audio)
    layout, store = _store(tmp_path)
    spec = ExtractionSpec((MEL128,), WINDOW)

    def ingest(run_id: str) -> None:
        work = select_work(scan_catalogue(str(tmp_path / "src")), read_manifest(layout), feature_sets=[MEL128])
        removed = vanished(scan_catalogue(str(tmp_path / "src")), read_manifest(layout), source=str(tmp_path / "src"),
                           run_id=run_id)  # fmt: skip
        rows = []
        if len(work):
            [shard] = plan_shards(work, run_id=run_id, row_start=store.allocate(len(work)), rows_per_track=1,
                                  shard_size=len(work))  # fmt: skip
            rows = run_shard(shard, spec, layout).rows
        commit_run(layout, store, run_id, removed + rows)

    def live() -> dict[str, int]:
        ids = open_features(layout)["track_id"][:]
        return {track: ids.tolist().count(track) for track in ids if track}

    ingest("r1")
    assert len(catalogue) == 4 and list(live().values()) == [1, 1, 1]  # the broken file holds no row
    write_audio("src/rock/a.wav", tone(3, freq=260))  # edited: a new track id
    os.utime(tmp_path / "src/rock/b.flac", (1, 1))  # touched: read again, the same track
    (tmp_path / "src/jazz/c.mp3").unlink()  # retired
    ingest("r2")
    current = read_manifest(layout).drop_duplicates("uri", keep="last").set_index("uri")
    expected = {current.loc[str(tmp_path / name), "track_id"]: 1 for name in ("src/rock/a.wav", "src/rock/b.flac")}
    assert live() == expected


def test_work_goes_in_batches_each_with_its_own_run_id(tmp_path, write_audio):
    layout, _ = _store(tmp_path)
    work = select_work(_catalogue(tmp_path, write_audio), read_manifest(layout), feature_sets=[MEL128])
    batches = list(plan_batches(work, run_id="r1", batch_tracks=3))
    assert [(batch_id, len(batch)) for batch_id, batch in batches] == [("r1-b00000", 3), ("r1-b00001", 1)]
    assert [batch_id for batch_id, _ in plan_batches(work, run_id="r1", batch_tracks=4)] == ["r1"]
    assert pd.concat([batch for _, batch in batches])["uri"].tolist() == work["uri"].tolist()
    with pytest.raises(ParameterError, match="batch-tracks"):
        list(plan_batches(work, run_id="r1", batch_tracks=0))


def test_the_same_audio_under_two_labels_is_a_label_conflict_and_a_real_file_beats_its_link(tmp_path):
    (tmp_path / "pop").mkdir()
    (tmp_path / "pop/real.wav").write_bytes(b"audio")
    os.symlink(tmp_path / "pop/real.wav", tmp_path / "pop/alias.wav")
    row = {"status": "ok", "track_id": "sha256:aa", "error": None}
    rows = [
        {**row, "uri": str(tmp_path / "pop/alias.wav"), "label": "pop", "row": 0},  # listed first: a is before r
        {**row, "uri": str(tmp_path / "pop/real.wav"), "label": "pop", "row": 1},
        {**row, "uri": "/lib/jazz/y.wav", "label": "jazz", "row": 2},
    ]
    out = {
        r["uri"].rsplit("/", 2)[-2] + "/" + r["uri"].rsplit("/", 1)[-1]: r
        for r in mark_duplicates(rows, pd.DataFrame())
    }
    assert out["pop/real.wav"]["status"] == "ok" and out["pop/alias.wav"]["status"] == "skipped"
    assert "label_conflict" not in out["pop/alias.wav"]  # same label: a plain duplicate
    assert out["jazz/y.wav"]["error"] == f"duplicate of {tmp_path / 'pop/real.wav'}"
    assert out["jazz/y.wav"]["label_conflict"].kept_label == "pop"

    tally = RunTally()
    tally.add(list(out.values()))
    [conflict] = tally.summary(**SUMMARY_FACTS).label_conflicts
    assert conflict == LabelConflict("/lib/jazz/y.wav", "jazz", str(tmp_path / "pop/real.wav"), "pop")
    assert "label conflict: /lib/jazz/y.wav is labelled jazz, but its audio is that of" in describe_ingest(
        tally.summary(**SUMMARY_FACTS)
    )


def test_a_real_file_takes_its_track_over_from_a_link_committed_in_an_earlier_run(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "links").mkdir()
    (tmp_path / "real/x.wav").write_bytes(b"audio")
    os.symlink(tmp_path / "real/x.wav", tmp_path / "links/x.wav")
    base = {name: None for name in MANIFEST_SCHEMA.names} | {"status": "ok", "track_id": "sha256:aa", "label": "pop"}
    first = mark_duplicates([{**base, "uri": str(tmp_path / "links/x.wav"), "row": 0, "run_id": "r1"}], pd.DataFrame())
    manifest = pd.DataFrame(first)  # `ingest links/`, then later `ingest real/`
    second = mark_duplicates([{**base, "uri": str(tmp_path / "real/x.wav"), "row": 1, "run_id": "r2",
                               "label": "jazz"}], manifest)  # fmt: skip
    by_uri = {row["uri"].rsplit("/", 2)[-2]: row for row in second}
    assert (by_uri["real"]["status"], by_uri["real"]["row"]) == ("ok", 1)
    link = by_uri["links"]
    assert (link["status"], link["row"], link["run_id"]) == ("skipped", None, "r2")
    assert link["error"] == f"duplicate of {tmp_path / 'real/x.wav'}"
    assert link["label_conflict"] == LabelConflict(
        str(tmp_path / "links/x.wav"), "pop", str(tmp_path / "real/x.wav"), "jazz"
    )
    again = mark_duplicates([{**base, "uri": str(tmp_path / "links/x.wav"), "row": 2, "run_id": "r3"}],
                            pd.concat([manifest, pd.DataFrame(second)]))  # fmt: skip
    assert again[0]["status"] == "skipped"  # the link, read again, stays a duplicate of the real file


SUMMARY_FACTS = {"run_id": "r1", "source": "/lib", "store": "/s", "dataset": "folder", "listed": 3, "selected": 3,
                 "feature_sets": ("mel128",), "wall_s": 1.0, "phases": {}}  # fmt: skip


def test_duplicate_content_under_two_names_is_kept_once():
    rows = [
        {"track_id": "sha256:aa", "uri": "/x/one.wav", "status": "ok", "row": 0, "error": None, "label": None},
        {"track_id": "sha256:aa", "uri": "/x/two.wav", "status": "ok", "row": 1, "error": None, "label": None},
        {"track_id": None, "uri": "/x/bad.wav", "status": "failed", "row": None, "error": "x", "label": None},
    ]
    out = mark_duplicates(rows, pd.DataFrame())
    assert [r["status"] for r in out] == ["ok", "skipped", "failed"]
    assert out[1]["error"] == "duplicate of /x/one.wav" and out[1]["row"] is None
