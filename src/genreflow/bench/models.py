"""``genreflow bench models``: every recipe's cross-validated track accuracy and fit time, on one
generated catalogue ingested once, in one table.

The recipes come from the registries, so a new linear probe, ``auto`` as the default, or an
architecture reading a new feature set on mel128's frame grid (a linear-frequency STFT, seed 002's
comparison) each add a row without a change here. On the ``hard`` demo this is a sanity check that a
change helps, not a target: the catalogue is synthetic, and only a user's own labels say how a recipe
does on music.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from genreflow.infra.settings import Settings
from genreflow.pipeline.errors import ParameterError
from genreflow.pipeline.training.config import DEFAULT_ARCHITECTURE, TrainConfig

if TYPE_CHECKING:  # the store loads zarr and pandas; this module stays light for the CLI's help
    from genreflow.pipeline.store import StoreLayout

DEFAULT_TRACKS = 120  # 12 a genre on the hard demo: about 20 min for every recipe on 2 cores
DEFAULT_FOLDS = 5
DEFAULT_DIFFICULTY = "hard"
# Gradient-trained rows get fewer epochs than `train`'s default: enough to tell a recipe that learns
# from one that cannot (cnn2 on the hard demo: 0.20 at 30 epochs, patience 10, 40 s a fold; chance
# at 8), short enough for a bench. Linear probes fit as `train` fits them.
FEW_EPOCHS = TrainConfig(epochs=30, fine_tune_epochs=0, patience=10)
# refit: the head's probe start and the kept epochs again on train + valid (0.710 on the hard demo,
# 0.657 without, against its probe's 0.767 fitted on the same tracks)
SHORT_FINE_TUNE = TrainConfig(epochs=3, fine_tune_epochs=2, patience=2, refit=True)
GRADIENT_BASELINE = "cnn2"  # seed 001's CNN on mel128; the feature-set comparison trains it on each set
HALF_HOP = TrainConfig(patch_hop=0.5)  # track-level aggregation over half-overlapping patches
HALF_HOP_PROBE = "musicnn-msd-linear"  # the probe the overlap comparison refits: the fastest musicnn one


@dataclass(frozen=True)
class Recipe:
    """A row of the table: an architecture (``--backbone`` name) fitted with a config."""

    name: str
    backbone: str
    config: TrainConfig
    what: str


@dataclass(frozen=True)
class RecipeResult:
    """One recipe's K-fold figures. ``seconds_per_fold`` is the wall time of a fold: fit on its
    train (+ valid) tracks, then score its test tracks."""

    recipe: Recipe
    inputs: tuple[str, ...]
    fold_accuracies: tuple[float, ...]
    accuracy_mean: float
    accuracy_std: float
    macro_f1_mean: float
    seconds_per_fold: float


@dataclass(frozen=True)
class ModelsBench:
    """A whole run: the catalogue, how it was ingested, and every recipe's result."""

    difficulty: str
    tracks: int
    classes: int
    folds: int
    device: str
    ingest_s: float
    results: tuple[RecipeResult, ...]

    def table(self) -> str:
        """The figures as a Markdown table under a one-line description of the run."""
        lines = [
            f"genreflow bench models: {self.tracks} tracks of the {self.difficulty} demo ({self.classes} genres, "
            f"chance {1 / self.classes:.3f}), {self.folds}-fold cross-validation, on {self.device}; "
            f"ingested once in {self.ingest_s:.1f} s",
            "",
            "| recipe | input | what | track accuracy (mean ± std) | macro-F1 | fit s/fold |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r.recipe.name} | {'+'.join(r.inputs)} | {r.recipe.what} | {r.accuracy_mean:.3f} ± {r.accuracy_std:.3f}"
            f" | {r.macro_f1_mean:.3f} | {r.seconds_per_fold:.1f} |"
            for r in self.results
        ]
        lines.append("fit s/fold: wall seconds of one fold, fitting on its train and valid tracks and scoring its test")
        return "\n".join(lines)


def known_recipes() -> dict[str, Recipe]:
    """Every recipe the bench knows, by name: the default backbone, each linear probe, one probe over
    half-overlapping patches, musicnn-msd fine-tuned, cnn2 from scratch on mel128, and cnn2's
    counterpart on every other feature set on mel128's frame grid that an architecture reads."""
    from genreflow.pipeline.features import FEATURE_SETS, MEL128
    from genreflow.pipeline.models.architectures import ARCHITECTURES

    probes = [a.name for a in ARCHITECTURES.values() if a.linear_probe]
    found = [
        *(Recipe(name, name, TrainConfig(), "linear probe") for name in dict.fromkeys([DEFAULT_ARCHITECTURE, *probes])),
        Recipe(
            f"{HALF_HOP_PROBE}/hop=0.5",
            HALF_HOP_PROBE,
            HALF_HOP,
            "linear probe, its track features and predictions over half-overlapping patches",
        ),
        Recipe(
            "musicnn-msd",
            "musicnn-msd",
            SHORT_FINE_TUNE,
            f"head, then top layers fine-tuned ({SHORT_FINE_TUNE.epochs}+{SHORT_FINE_TUNE.fine_tune_epochs} epochs), "
            "refitted on train + valid",
        ),
        Recipe(GRADIENT_BASELINE, GRADIENT_BASELINE, FEW_EPOCHS, f"from scratch ({FEW_EPOCHS.epochs} epochs)"),
    ]
    same_grid = {
        name
        for name, fs in FEATURE_SETS.items()
        if name != MEL128.name and (fs.sample_rate, fs.hop_length) == (MEL128.sample_rate, MEL128.hop_length)
    }
    found += [
        Recipe(
            a.name,
            a.name,
            FEW_EPOCHS,
            f"from scratch ({FEW_EPOCHS.epochs} epochs), {a.inputs[0]} against {MEL128.name}",
        )
        for a in ARCHITECTURES.values()
        if len(a.inputs) == 1 and a.inputs[0] in same_grid and not a.linear_probe and not a.pretrained
    ]
    return {recipe.name: recipe for recipe in found}


def choose_recipes(names: Sequence[str] | None) -> list[Recipe]:
    """The recipes named (all when None), in the order given.

    Raises
    ------
    ParameterError
        A name that is no recipe; the message lists the known ones.
    """
    known = known_recipes()
    unknown = [name for name in names or () if name not in known]
    if unknown:
        raise ParameterError(f"--recipes: unknown {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[name] for name in names] if names else list(known.values())


def bench_models(
    settings: Settings,
    *,
    tracks: int = DEFAULT_TRACKS,
    folds: int = DEFAULT_FOLDS,
    recipes: Sequence[Recipe] | None = None,
    difficulty: str = DEFAULT_DIFFICULTY,
    directory: Path | None = None,
) -> ModelsBench:
    """Generate ``tracks`` of the ``difficulty`` demo, ingest them once (every input the recipes
    read), then cross-validate each recipe (default: all of :func:`known_recipes`) on the same folds.

    Raises
    ------
    ParameterError
        An unknown difficulty, fewer than 3 folds, or too few tracks for a genre to sit in every fold.
    """
    from genreflow.pipeline.demo import genres

    chosen = list(recipes) if recipes else list(known_recipes().values())
    classes = len(genres(difficulty))
    per_class = tracks // classes
    if folds < 3:
        raise ParameterError(f"--folds {folds}: cross-validation needs 3 or more (one test, one valid, the rest train)")
    if per_class < folds:
        raise ParameterError(
            f"--tracks {tracks}: {per_class} per genre of the {difficulty} demo's {classes}, fewer than --folds "
            f"{folds}; pass --tracks {classes * folds} or more"
        )
    workdir = Path(directory or tempfile.mkdtemp(prefix="genreflow-bench-models-"))
    layout, ingest_s = demo_store(settings, workdir, difficulty=difficulty, per_class=per_class,
                                  feature_sets=_inputs_of(chosen))  # fmt: skip
    device = _device()
    results = tuple(cross_validate_recipe(layout, recipe, folds=folds) for recipe in chosen)
    return ModelsBench(difficulty, per_class * classes, classes, folds, device, ingest_s, results)


def demo_store(
    settings: Settings, workdir: Path, *, difficulty: str, per_class: int, feature_sets: Sequence[str]
) -> tuple[StoreLayout, float]:
    """The demo catalogue of this size (written once in ``workdir``) ingested with ``feature_sets``,
    and the seconds the ingest flow took (nothing new to do when a run already stored them)."""
    from genreflow.flows.runtime import run_ingest
    from genreflow.pipeline.demo import make_demo_catalogue
    from genreflow.pipeline.store import StoreLayout

    name = f"{difficulty}-{per_class}"
    catalogue, store = workdir / f"catalogue-{name}", workdir / f"store-{name}"
    if not (catalogue / "genres").exists():
        make_demo_catalogue(catalogue, difficulty=difficulty, per_class=per_class, broken=False)
    started = time.perf_counter()
    run_ingest(dataclasses.replace(settings, store=str(store)), source=str(catalogue), store=str(store),
               feature_sets=list(feature_sets), show_progress=False)  # fmt: skip
    return StoreLayout(str(store)), time.perf_counter() - started


def cross_validate_recipe(layout: StoreLayout, recipe: Recipe, *, folds: int) -> RecipeResult:
    """``train --cv`` of one recipe on ``layout``'s labelled tracks, timed."""
    from genreflow.pipeline.training.select import cross_validate

    started = time.perf_counter()
    cv = cross_validate(layout, recipe.backbone, recipe.config, folds=folds)
    seconds = time.perf_counter() - started
    return RecipeResult(
        recipe=recipe,
        inputs=_inputs_of([recipe]),
        fold_accuracies=tuple(float(fold["accuracy"]) for fold in cv["per_fold"]),
        accuracy_mean=cv["accuracy"]["mean"],
        accuracy_std=cv["accuracy"]["std"],
        macro_f1_mean=cv["macro_f1"]["mean"],
        seconds_per_fold=seconds / folds,
    )


def _inputs_of(chosen: Sequence[Recipe]) -> tuple[str, ...]:
    """The feature sets the recipes read, in first-use order."""
    from genreflow.pipeline.models.architectures import backbone_candidates

    return tuple(dict.fromkeys(i for r in chosen for a in backbone_candidates(r.backbone) for i in a.inputs))


def _device() -> str:
    from genreflow.infra.devices import select_device

    return select_device("auto")
