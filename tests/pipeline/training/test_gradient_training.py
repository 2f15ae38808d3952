"""Gradient training: epochs that cover every training patch, early stopping that keeps the best
weights (the probe's solution included), a pretrained head started from its linear probe, the
refit on train + valid, and fine-tuned musicnn against its linear probe on a synthetic catalogue."""

import os
import shutil

import numpy as np
import pytest

from genreflow.pipeline.audio import ClipWindow
from genreflow.pipeline.datasets import scan_catalogue
from genreflow.pipeline.demo import STYLES, make_demo_catalogue
from genreflow.pipeline.extract import ExtractionSpec, run_shard
from genreflow.pipeline.features import MUSICNN96
from genreflow.pipeline.ingest import commit_run, plan_shards, select_work
from genreflow.pipeline.models.architectures import RANDOM_INIT, get_architecture
from genreflow.pipeline.patches import PatchReader
from genreflow.pipeline.store import FeatureStore, StoreLayout, read_manifest
from genreflow.pipeline.training.config import TrainConfig, parse_augment
from genreflow.pipeline.training.data import labelled_tracks
from genreflow.pipeline.training.evaluate import predict_tracks
from genreflow.pipeline.training.fit import fit

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
GENRES = list(STYLES)[:3]


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory):
    """Three demo genres, 6 tracks each, 6-s clips ingested as musicnn96 (two 3-s patches a track)."""
    root = tmp_path_factory.mktemp("gradient")
    make_demo_catalogue(root / "catalogue", per_class=6, seconds=6.0, seed=4, broken=False)
    for genre in set(STYLES) - set(GENRES):
        shutil.rmtree(root / "catalogue" / "genres" / genre)
    layout = StoreLayout(str(root / "store"))
    store = FeatureStore(layout)
    spec = ExtractionSpec((MUSICNN96,), ClipWindow(6.0))
    store.ensure(spec.feature_sets, window=spec.window, channel_views=spec.channel_views)
    work = select_work(scan_catalogue(str(root / "catalogue")), read_manifest(layout), feature_sets=spec.feature_sets)
    [shard] = plan_shards(work, run_id="r1", row_start=store.allocate(len(work)), rows_per_track=1,
                          shard_size=len(work))  # fmt: skip
    rows = run_shard(shard, spec, layout).rows
    assert {row["status"] for row in rows} == {"ok"}
    commit_run(layout, store, "r1", rows)
    return layout


def _accuracy(model, reader, tracks, classes):
    y = tracks["label"].map({name: i for i, name in enumerate(classes)}).to_numpy()
    return float(np.mean(predict_tracks(model, reader, tracks).argmax(axis=1) == y))


def test_fine_tuned_musicnn_starts_from_its_probe_and_ends_at_least_as_good(demo_store, tmp_path):
    tuned_arch, probe_arch = get_architecture("musicnn-msd"), get_architecture("musicnn-msd-linear")
    data = labelled_tracks(demo_store, tuned_arch.inputs, seed=0)
    reader = PatchReader(demo_store, tuned_arch)
    train, valid, test = (data.split(s) for s in ("train", "valid", "test"))
    config = TrainConfig(epochs=1, fine_tune_epochs=1, batch_size=16, patience=1)
    tuned = fit(tuned_arch, reader, data, config, tmp_path / "tuned")
    probe = fit(probe_arch, reader, data, config, tmp_path / "probe")

    fitted = tuned.details
    assert fitted["head_init"]["from"] == "linear probe musicnn-msd-linear"
    assert fitted["head_init"]["tracks"] == len(train)  # the probe of the training tracks: valid stays held out
    assert fitted["phases"] == ["head", "fine-tune"] and fitted["weights"]["pretrained"]
    assert fitted["patches_per_epoch"] == 2 * len(train)  # 6-s clips: two 3-s patches per track
    assert fitted["steps_per_epoch"] == -(-2 * len(train) // 16)
    stopping = fitted["early_stopping"]
    assert stopping["head"]["val_loss"] <= stopping["head"]["start_val_loss"]  # the probe's loss is the bar
    assert stopping["fine-tune"]["start_val_loss"] == pytest.approx(stopping["head"]["val_loss"], rel=1e-4)
    valid_loss = _valid_loss(tuned.model, reader, valid, data.classes)
    assert valid_loss == pytest.approx(stopping["fine-tune"]["val_loss"], rel=1e-3)  # the kept weights are live
    assert valid_loss <= stopping["head"]["start_val_loss"] + 1e-6  # never worse than the probe it started from

    tuned_accuracy = _accuracy(tuned.model, reader, test, data.classes)
    probe_accuracy = _accuracy(probe.model, reader, test, data.classes)
    print(f"test accuracy: musicnn-msd fine-tuned {tuned_accuracy:.3f}, musicnn-msd-linear {probe_accuracy:.3f}")
    assert tuned_accuracy >= probe_accuracy


def _valid_loss(model, reader, tracks, classes):
    from genreflow.pipeline.patches import evaluation_patches

    x, owners = evaluation_patches(reader, tracks)
    y = tracks["label"].map({name: i for i, name in enumerate(classes)}).to_numpy()[owners]
    p = model.predict(x[0], verbose=0)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-7, 1.0))))


def test_steps_override_random_head_refit_and_head_grid_axis(make_feature_store, tmp_path):
    from genreflow.pipeline.training.select import parse_grid

    offsets = {"a": -20.0, "b": 0.0, "c": 20.0}
    labels = [label for label in offsets for _ in range(7)]
    layout = make_feature_store(labels, lambda track, view, shape: np.random.default_rng(track).normal(
        offsets[labels[track]], 5.0, shape), window_s=3.0)  # fmt: skip
    arch = get_architecture("cnn1")
    data = labelled_tracks(layout, arch.inputs, seed=0)
    reader = PatchReader(layout, arch)
    [config] = parse_grid(["head=dense256x2"], TrainConfig(epochs=2, batch_size=4, steps_per_epoch=3, patience=5,
                                                            refit=True, augment=parse_augment("none")))  # fmt: skip
    result = fit(arch, reader, data, config, tmp_path / "state")

    fitted = result.details
    assert fitted["steps_per_epoch"] == 3 and fitted["patches_per_epoch"] == len(data.split("train"))
    assert fitted["weights"] == {"pretrained": False, "source": RANDOM_INIT} and fitted["phases"] == ["head"]
    assert fitted["head_init"] == {"from": "random init"} and fitted["head"] == "dense256x2"
    assert result.model.get_layer("head_dense2").units == 256 and result.model.get_layer("head_dropout2").rate == 0.2
    kept = fitted["early_stopping"]["head"]["epochs"]
    assert 1 <= kept <= 2  # a random head's start never competes: some epoch is kept
    assert fitted["refit"] == {
        "tracks": len(data.split("train")) + len(data.split("valid")),
        "epochs": {"refit-head": kept},
    }
    assert len(result.history["refit-head/loss"]) == kept and "refit-head/val_loss" not in result.history
    assert fitted["augment"] == "masking=0,gain=0,noise=0,zoom=0,channels=0"
