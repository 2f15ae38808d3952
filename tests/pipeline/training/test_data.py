import pytest

from genreflow.pipeline.datasets import scan_catalogue
from genreflow.pipeline.errors import ParameterError, StoreError
from genreflow.pipeline.training.data import labelled_tracks
from tests.conftest import tone
from tests.pipeline.training.conftest import manifest_rows


def _gtzan(splits, genres=("blues", "jazz", "rock")):
    return [{"track_id": f"gtzan:{g}.{i:05d}", "dataset": "gtzan", "label": g, "split": s}
            for g in genres for i, s in enumerate(splits)]  # fmt: skip


def test_gtzan_tracks_the_filtered_lists_leave_out_are_excluded_not_resplit(make_store):
    records = _gtzan(["train", "train", "train", "valid", "test", None])
    data = labelled_tracks(make_store(records), ["mel128"])
    assert data.split_source == "dataset"
    assert data.excluded == 3 and len(data.table) == 15
    assert not data.table["track_id"].str.endswith(".00005").any()  # the faulty ones: neither trained nor scored
    expected = {r["track_id"]: r["split"] for r in records if r["split"]}
    assert dict(zip(data.table["track_id"], data.table["split"], strict=True)) == expected
    assert data.summary()["excluded_by_split"] == 3 and data.summary()["split_source"] == "dataset"


def test_gtzan_split_lists_through_the_adapter(tmp_path, write_audio, make_store):
    for genre in ("blues", "jazz"):
        for i in range(4):
            write_audio(f"gtzan/genres/{genre}/{genre}.{i:05d}.wav", tone(0.1))
    lists = {
        "train": ["blues.00000", "blues.00001", "jazz.00000"],
        "valid": ["blues.00002", "jazz.00002"],
        "test": ["blues.00003", "jazz.00003"],
    }  # jazz.00001 is left out, as GTZAN's faulty tracks are
    for split, stems in lists.items():
        lines = [f"{stem.split('.')[0]}/{stem}.wav" for stem in stems]
        (tmp_path / f"gtzan/{split}_filtered.txt").write_text("\n".join(lines) + "\n")
    catalogue = scan_catalogue(str(tmp_path / "gtzan"))
    data = labelled_tracks(make_store(catalogue.to_dict("records")), ["mel128"])
    assert data.split_source == "dataset"
    assert "gtzan:jazz.00001" not in set(data.table["track_id"])
    got = {split: sorted(data.split(split)["track_id"].str.removeprefix("gtzan:")) for split in lists}
    assert got == lists and data.counts() == {"train": 3, "valid": 2, "test": 2} and data.excluded == 1


def test_fma_tracks_without_a_split_are_excluded(make_store):
    records = [{"track_id": f"fma:{i:06d}", "dataset": "fma", "label": "Pop" if i % 2 else "Folk",
                "split": ("train", "train", "train", "valid", "test", None)[i // 2]} for i in range(12)]  # fmt: skip
    data = labelled_tracks(make_store(records), ["mel128"])
    assert data.split_source == "dataset" and data.counts() == {"train": 6, "valid": 2, "test": 2}
    assert data.excluded == 2


def test_validation_is_carved_from_train_when_the_dataset_has_only_train_and_test(make_store):
    data = labelled_tracks(make_store(_gtzan(["train"] * 6 + ["test"] * 2)), ["mel128"])
    counts = data.counts()
    assert data.split_source == "dataset" and counts["test"] == 6 and counts["train"] + counts["valid"] == 18
    assert counts["valid"] > 0 and data.excluded == 0


def test_a_dataset_split_without_test_tracks_is_refused_not_resplit(make_store):
    with pytest.raises(ParameterError, match=r"gtzan.*no test tracks"):
        labelled_tracks(make_store(_gtzan(["train", "train", "train", "valid", None])), ["mel128"])


def test_a_mixed_store_splits_each_dataset_by_its_own_rule(make_store):
    folder = [{"track_id": f"sha256:{i:02d}", "dataset": "folder", "label": ("blues", "jazz")[i % 2]}
              for i in range(20)]  # fmt: skip
    gtzan = _gtzan(["train", "train", "valid", "test", None], genres=("blues", "jazz"))
    data = labelled_tracks(make_store(gtzan + folder), ["mel128"], seed=3)
    by_id = data.table.set_index("track_id")["split"]
    listed = {r["track_id"]: r["split"] for r in gtzan if r["split"]}
    assert {track: by_id[track] for track in listed} == listed
    assert len(data.table) == 28 and data.excluded == 2
    assert data.split_sources == {"folder": "stratified(seed=3)", "gtzan": "dataset"}
    assert data.split_source == "folder: stratified(seed=3); gtzan: dataset"
    folder_splits = data.table[data.table["dataset"] == "folder"].groupby(["label", "split"]).size()
    assert (folder_splits.unstack().loc[:, ["valid", "test"]] >= 1).all().all()


def test_us8k_folds_give_the_split_and_travel_with_the_tracks(make_store):
    records = [{"track_id": f"us8k:{f}-{i}", "dataset": "us8k", "label": ("dog_bark", "siren")[i % 2], "fold": f}
               for f in (1, 2, 3, 4) for i in range(4)]  # fmt: skip
    records.append({"track_id": "us8k:nofold", "dataset": "us8k", "label": "siren", "fold": None})
    data = labelled_tracks(make_store(records), ["mel128"])
    assert data.split_source == "folds" and len(data.table) == 16
    assert data.excluded == 1 and data.table["fold"].tolist() == [f for f in (1, 2, 3, 4) for _ in range(4)]
    assert set(data.split("test")["fold"]) == {4} and set(data.split("valid")["fold"]) == {3}


def test_manifest_rows_helper_fills_every_schema_column():
    [row] = manifest_rows([{"track_id": "x", "label": "a"}], feature_sets=("mel128",))
    assert row["status"] == "ok" and row["uri"] == "/audio/x.wav" and row["fold"] is None


def test_a_store_without_the_models_feature_set_names_it_and_the_command_that_adds_it(make_store):
    """The newcomer's path: `ingest` of mel128 only, then `train` of a musicnn96 model."""
    layout = make_store(_gtzan(["train", "train", "valid", "test"]), feature_sets=("mel128",))
    with pytest.raises(StoreError) as raised:
        labelled_tracks(layout, ["musicnn96"], needed_by="musicnn-msd-linear")
    message = str(raised.value)
    assert "musicnn-msd-linear reads musicnn96" in message and "stored: mel128" in message
    assert f"genreflow ingest SOURCE --store {layout.root} --features mel128,musicnn96" in message
