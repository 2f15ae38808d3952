"""``genreflow demo``: the whole pipeline on the synthetic demo catalogue, printing where things are."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from genreflow.console import EXIT_OK, describe_ingest, describe_scoring, describe_training
from genreflow.flows.runtime import run_ingest, run_score, run_train
from genreflow.infra.settings import Settings

DEMO_BACKBONE = "musicnn-msd-linear"


def run_demo(settings: Settings, *, directory: Path) -> int:
    """Make the demo catalogue (once), ingest it, train and promote the default model, score every track."""
    from genreflow.pipeline.demo import make_demo_catalogue
    from genreflow.pipeline.registry import promote
    from genreflow.pipeline.store import StoreLayout
    from genreflow.pipeline.store.lease import acquire_lease

    catalogue = directory / "catalogue"
    if not (catalogue / "genres").exists():
        paths = make_demo_catalogue(catalogue)
        print(f"demo catalogue: {len(paths)} files under {catalogue / 'genres'}")
    settings = dataclasses.replace(settings, store=settings.store or str(directory / "store"))
    store = settings.store
    summary = run_ingest(settings, source=str(catalogue), feature_sets=["mel128", "musicnn96", "wavelet"])
    print(describe_ingest(summary))
    print(f"feature store: {store}/features.zarr   manifest: {store}/manifest/")
    print("the broken demo files above are expected to fail: they show how bad input is reported")

    # One probe, not `auto`: comparing five probes computes four taggers' features, about twice the
    # fit time of one on this catalogue (README, "Models and training"); registered under the
    # default model name, which `score` reads.
    trained = run_train(settings, backbone=DEMO_BACKBONE)
    print(describe_training(trained))
    layout = StoreLayout(store, settings.storage_options)
    with acquire_lease(layout, holder=f"promote {trained.ref}"):
        print(f"production model: {promote(layout, str(trained.ref))}")

    scored = run_score(settings)
    print(describe_scoring(scored))
    print(example_rows(scored.scores))
    return EXIT_OK


def example_rows(folder: str, n: int = 3) -> str:
    """The first ``n`` rows of a model version's scores, as a person would look at them in pandas."""
    import pandas as pd

    frame = pd.read_parquet(folder).head(n)
    columns = ["track_id", "label_top", "prob_top", "top3", "n_windows"]
    with pd.option_context("display.width", 160, "display.max_colwidth", 60):
        return f"three example rows of {folder}:\n{frame[columns].to_string(index=False)}"
