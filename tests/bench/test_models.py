"""``genreflow bench models``: one ingest, a cross-validated row per recipe, figures computed from the labels."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from genreflow.bench.models import Recipe, bench_models, choose_recipes, cross_validate_recipe, known_recipes
from genreflow.cli import main
from genreflow.pipeline.demo import STYLES
from genreflow.pipeline.store import StoreLayout, open_features
from genreflow.pipeline.training.config import TrainConfig

pytestmark = pytest.mark.integration


def _relabelled(store: Path, target: Path) -> StoreLayout:
    """A copy of a store whose every track carries another genre's label, each label keeping its
    number of tracks: no recipe can learn these labels from the audio."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    shutil.copytree(store, target)
    for part in (target / "manifest").glob("*.parquet"):
        table = pq.read_table(part)
        frame = table.to_pandas()
        labels = sorted(frame["label"].unique())
        position = frame.groupby("label").cumcount()  # each track's place within its genre
        moved = zip(frame["label"], position, strict=True)
        frame["label"] = [labels[(labels.index(genre) + i + 1) % len(labels)] for genre, i in moved]
        pq.write_table(pa.Table.from_pandas(frame, schema=table.schema, preserve_index=False), part)
    return StoreLayout(str(target))


def test_bench_models_cross_validates_each_recipe_on_one_ingest(tmp_path, settings):
    settings = dataclasses.replace(settings, workers=1)
    probe = known_recipes()["musicnn-msd-linear"]
    cnn = Recipe("cnn2", "cnn2", TrainConfig(epochs=1, fine_tune_epochs=0, batch_size=8, steps_per_epoch=1), "1 step")
    bench = bench_models(settings, tracks=3 * len(STYLES), folds=3, recipes=[probe, cnn], difficulty="easy",
                         directory=tmp_path)  # fmt: skip
    assert (bench.difficulty, bench.tracks, bench.classes, bench.folds) == ("easy", 3 * len(STYLES), len(STYLES), 3)
    assert [r.recipe.name for r in bench.results] == ["musicnn-msd-linear", "cnn2"]
    assert [r.inputs for r in bench.results] == [("musicnn96",), ("mel128",)]
    store = StoreLayout(str(tmp_path / "store-easy-3"))
    assert set(open_features(store).group_keys()) >= {"musicnn96", "mel128"}  # one ingest stored both inputs
    for result in bench.results:
        assert len(result.fold_accuracies) == 3 and all(0 <= a <= 1 for a in result.fold_accuracies)
        assert result.accuracy_mean == pytest.approx(np.mean(result.fold_accuracies))
        assert result.accuracy_std == pytest.approx(np.std(result.fold_accuracies, ddof=1))
        assert 0 <= result.macro_f1_mean <= 1 and result.seconds_per_fold > 0
    table = bench.table()
    fitted = bench.results[0]
    assert f"| musicnn-msd-linear | musicnn96 | linear probe | {fitted.accuracy_mean:.3f} ± " in table
    assert "| cnn2 | mel128 |" in table and "3-fold" in table

    # The same stored audio under labels it does not support: the figure comes from the labels.
    control = cross_validate_recipe(_relabelled(tmp_path / "store-easy-3", tmp_path / "relabelled"), probe, folds=3)
    assert fitted.accuracy_mean >= control.accuracy_mean + 0.3, (fitted.fold_accuracies, control.fold_accuracies)


def test_recipes_come_from_the_registries_and_bad_flags_are_one_line(capsys, monkeypatch):
    from genreflow.pipeline.models.architectures import ARCHITECTURES
    from genreflow.pipeline.training.config import DEFAULT_ARCHITECTURE

    names = list(known_recipes())
    assert names[0] == DEFAULT_ARCHITECTURE and {"musicnn-msd", "cnn2"} <= set(names)
    assert {a.name for a in ARCHITECTURES.values() if a.linear_probe} <= set(names)
    assert [r.name for r in choose_recipes(["cnn2", "musicnn-msd-linear"])] == ["cnn2", "musicnn-msd-linear"]
    stft = known_recipes()["cnn2-stft"]  # seed 002's comparison: the same CNN on the linear-frequency set
    assert stft.what.endswith("stft512 against mel128") and stft.config == known_recipes()["cnn2"].config
    overlap = known_recipes()["musicnn-msd-linear/hop=0.5"]  # the same probe over half-overlapping patches
    assert (overlap.backbone, overlap.config.patch_hop, known_recipes()["musicnn-msd-linear"].config.patch_hop) == (
        "musicnn-msd-linear", 0.5, 1.0)  # fmt: skip

    with monkeypatch.context() as registered:  # a feature set on mel128's frame grid, and a CNN that reads it
        from genreflow.pipeline.features import FEATURE_SETS, MEL128

        registered.setitem(FEATURE_SETS, "linear-test", dataclasses.replace(MEL128, name="linear-test"))
        reader = dataclasses.replace(ARCHITECTURES["cnn2"], name="cnn2-linear-test", inputs=("linear-test",))
        registered.setitem(ARCHITECTURES, reader.name, reader)
        row = known_recipes()["cnn2-linear-test"]
        assert row.what.endswith("linear-test against mel128") and row.config == known_recipes()["cnn2"].config

    with pytest.raises(SystemExit) as parsed:
        main(["bench", "models", "--folds", "2"])
    assert parsed.value.code == 2 and "--folds: expected an integer of at least 3" in capsys.readouterr().err
    assert main(["bench", "models", "--recipes", "cnn2,nope"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert "--recipes: unknown nope; known: " in line
