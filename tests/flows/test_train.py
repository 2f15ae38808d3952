"""Training end to end: the demo catalogue ingested, a model trained by the Prefect flow, registered,
reported, promoted and loaded back; and a run interrupted mid-training that resumes."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from genreflow.pipeline.demo import STYLES, make_demo_catalogue
from genreflow.pipeline.store import StoreLayout

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory, settings):
    from genreflow.flows.runtime import run_ingest

    root = tmp_path_factory.mktemp("train-demo")
    make_demo_catalogue(root / "catalogue", per_class=12, seconds=9.0, seed=3, broken=False)
    store = str(root / "store")
    summary = run_ingest(settings, source=str(root / "catalogue"), store=store, show_progress=False)  # defaults
    assert summary.counts == {"ok": 12 * len(STYLES)}
    return store


def test_default_model_trains_registers_and_beats_chance(demo_store, settings, tmp_path, capsys, monkeypatch):
    """The newcomer's path with every default: `ingest DIR --store S`, `train --store S`, `score --store S`;
    with `--cv 3`, whose folds and the registered fit share each tagger's features."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from genreflow.cli import main
    from genreflow.pipeline import registry

    monkeypatch.setenv("GENREFLOW_HOME", str(settings.home))
    from genreflow.pipeline.training.config import AUTO_CANDIDATES

    assert main(["train", "--store", demo_store, "--cv", "3"]) == 0
    [listed] = registry.list_models(StoreLayout(demo_store))
    assert listed["name"] == "genre" and listed["architecture"] in AUTO_CANDIDATES  # the name score reads
    layout = StoreLayout(demo_store)
    card = registry.read_card(layout, registry.resolve(layout, "genre"))
    result = SimpleNamespace(version=listed["version"], card=card)
    assert f"trained genre@{result.version} ({listed['architecture']})" in capsys.readouterr().out
    fit = card["fit"]
    assert card["backbone_requested"] == "auto" and fit["backbone"] == card["architecture"] in fit["why"]
    assert [c["architecture"] for c in fit["candidates"]] == list(AUTO_CANDIDATES)
    assert card["architecture"] == min(fit["candidates"], key=lambda c: c["log_loss_mean"])["architecture"]
    n_tracks = 12 * len(STYLES)  # each tagger's features: every track once, in the cv folds; none again for the fit
    assert {t: c["tracks"] for t, c in fit["features_computed"].items()} == dict.fromkeys(
        ("musicnn-msd", "musicnn-mtt", "vgg-msd", "vgg-mtt"), n_tracks
    )
    assert fit["refitted_on"]["n_tracks"] == card["data"]["counts"]["train"] + card["data"]["counts"]["valid"]
    cv = card["selection"]["cross_validation"]
    assert sum(f["n_tracks"] for f in cv["per_fold"]) == n_tracks and all(f["architecture"] in AUTO_CANDIDATES
                                                                           for f in cv["per_fold"])  # fmt: skip
    metrics = result.card["metrics"]
    chance = 1 / len(STYLES)
    assert metrics["n_tracks"] >= 2 * len(STYLES)  # held-out tracks, every class
    assert metrics["accuracy"] >= chance + 0.4, metrics  # a wide margin over 1/7
    assert metrics["top3_accuracy"] >= metrics["accuracy"] and 0 < metrics["macro_f1"] <= 1

    layout = StoreLayout(demo_store)
    version_dir = Path(layout.root) / "models" / "genre" / result.version
    card = json.loads((version_dir / "card.json").read_text())
    assert card["data"]["split_source"].startswith("stratified") and card["fit"]["C"] in card["fit"]["C_grid"]
    assert set(card["metrics"]["per_class"]) == set(STYLES) and json.loads((version_dir / "labels.json").read_text())
    report = ("index.html", "confusion_matrix.png", "probe_selection.png", "backbones.png", "embedding_map.png",
              "misclassified.csv")  # fmt: skip
    for name in report:
        assert (version_dir / "report" / name).stat().st_size > 0  # misclassified.csv may be just its header
    assert not (version_dir / "report" / "training_curves.png").exists()  # a probe has no epochs to plot
    index = (version_dir / "report" / "index.html").read_text()
    assert "data:image/png;base64," in index and "Backbones compared" in index and "(chosen)" in index
    assert all(name in index for name in AUTO_CANDIDATES)

    ref = registry.promote(layout, "genre")
    assert registry.resolve(layout, "genre") == ref and registry.list_models(layout)[0]["production"]
    model = registry.load_model(layout, ref)
    assert model.output_shape == (None, len(STYLES))
    prefix = f"train-genre-{result.version.lower()}"
    with get_client(sync_client=True) as client:  # filtered by key: unkeyed artifacts and the listing limit aside
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(like_=prefix)))
    assert {a.key for a in found} == {f"{prefix}-classes", f"{prefix}-summary", f"{prefix}-backbones"}

    assert main(["score", "--store", demo_store, "--workers", "1"]) == 0
    assert f"score genre@{result.version} (store): {12 * len(STYLES)} of {12 * len(STYLES)}" in capsys.readouterr().out


def test_interrupted_training_resumes_from_its_checkpoints(demo_store, tmp_path, monkeypatch):
    """A run killed after its first phase picks up there: the head's epochs are not trained again."""
    from genreflow.pipeline.training import fit as fit_module
    from genreflow.pipeline.training.config import TrainConfig
    from genreflow.pipeline.training.run import train_and_register

    layout = StoreLayout(demo_store)
    config = TrainConfig(epochs=2, fine_tune_epochs=1, batch_size=16, steps_per_epoch=2, patience=3)
    state = tmp_path / "state"
    calls = []

    def crash_on_fine_tune(model, n_layers):
        calls.append("fine-tune")
        raise KeyboardInterrupt("simulated crash after the head phase")

    with monkeypatch.context() as patch:
        patch.setattr(fit_module, "unfreeze_top", crash_on_fine_tune)
        with pytest.raises(KeyboardInterrupt):
            train_and_register(layout, "musicnn-msd", model_name="resumed", config=config, state=state, device="cpu")
    assert (state / "head.done.weights.h5").exists() and calls == ["fine-tune"]
    head_history = json.loads((state / "head.history.json").read_text())

    result = train_and_register(layout, "musicnn-msd", model_name="resumed", config=config, state=state, device="cpu")
    card = result.card
    assert card["fit"]["phases"] == ["head", "fine-tune"] and not state.exists()
    assert card["metrics"]["n_tracks"] > 0 and np.isfinite(card["metrics"]["accuracy"])
    assert result.name == "resumed"
    assert head_history["head/loss"] and len(head_history["head/loss"]) <= config.epochs


def test_registry_on_s3_lists_complete_versions_promotes_and_loads(tmp_path, s3_endpoint):
    import keras
    import s3fs

    from genreflow.pipeline import registry

    s3fs.S3FileSystem(endpoint_url=s3_endpoint).mkdir("model-bucket")
    layout = StoreLayout("s3://model-bucket/store", {"endpoint_url": s3_endpoint})
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    refs = []
    for accuracy in (0.5, 0.75):
        staged = tmp_path / f"staged-{accuracy}"
        staged.mkdir()
        model.save(staged / "model.keras")
        refs.append(
            registry.register(layout, "genre", staged, {"architecture": "tiny", "metrics": {"accuracy": accuracy}})
        )
    fs = s3fs.S3FileSystem(endpoint_url=s3_endpoint)
    fs.mkdir(f"model-bucket/store/models/genre/{refs[1].version}9-partial")  # no card: never listed
    fs.pipe_file(f"model-bucket/store/models/genre/{refs[1].version}9-partial/model.keras", b"half")
    listed = registry.list_models(layout)
    assert [e["version"] for e in listed] == [r.version for r in refs] and refs[0].version < refs[1].version
    assert registry.resolve(layout, "genre") == refs[1]  # newest while nothing is promoted
    with pytest.raises(registry.RegistryError, match="no version is promoted"):
        registry.resolve(layout, "genre@production")
    registry.promote(layout, f"genre@{refs[0].version}")
    assert registry.resolve(layout, "genre") == refs[0] == registry.resolve(layout, "genre@production")
    assert [e["production"] for e in registry.list_models(layout)] == [True, False]
    x = np.ones((1, 4), np.float32)
    np.testing.assert_allclose(registry.load_model(layout, refs[0]).predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(registry.RegistryError, match="no model named"):
        registry.resolve(layout, "other")


def test_grid_is_chosen_on_validation_and_cross_validation_is_recorded(demo_store, settings):
    import dataclasses

    from genreflow.flows.runtime import run_train
    from genreflow.pipeline.training.config import TrainConfig
    from genreflow.pipeline.training.select import parse_grid

    base = TrainConfig(epochs=1, batch_size=16, steps_per_epoch=2)
    result = run_train(
        dataclasses.replace(settings, store=demo_store), backbone="cnn1", model_name="gridded", config=base,
        device="cpu", grid=parse_grid(["lr=1e-3,1e-2"], base), cv_folds=3,
    )  # fmt: skip
    selection = result.card["selection"]
    assert [p["learning_rate"] for p in selection["grid"]] == [1e-3, 1e-2]
    best = max(selection["grid"], key=lambda p: (p["accuracy"], p["macro_f1"]))
    assert selection["chosen"]["learning_rate"] == best["learning_rate"] == result.card["config"]["learning_rate"]
    cv = selection["cross_validation"]
    assert cv["folds"] == 3 and len(cv["per_fold"]) == 3
    assert cv["accuracy"]["mean"] == pytest.approx(np.mean([f["accuracy"] for f in cv["per_fold"]]))
    assert sum(f["n_tracks"] for f in cv["per_fold"]) == 12 * len(STYLES)  # every track is test exactly once
