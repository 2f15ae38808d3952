"""Stores built without decoding audio: a manifest only (what ``labelled_tracks`` reads), or with
feature rows of chosen values."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from genreflow.pipeline.store import MANIFEST_SCHEMA, StoreLayout, write_manifest_part


def manifest_rows(records: Iterable[Mapping[str, Any]], *, feature_sets: tuple[str, ...]) -> list[dict[str, Any]]:
    """Manifest rows of ``ok`` tracks from catalogue-like records (track_id, dataset, label, split, fold)."""
    rows = []
    for row, record in enumerate(records):
        values = {k: (None if not isinstance(v, list | tuple) and pd.isna(v) else v) for k, v in record.items()}
        rows.append(
            {name: None for name in MANIFEST_SCHEMA.names}
            | {"uri": f"/audio/{values['track_id']}.wav", "split": None, "fold": None}
            | values
            | {"status": "ok", "row": row, "valid_s": 30.0, "feature_sets": list(feature_sets), "run_id": "r1",
               "ingested_at": datetime(2024, 1, 1, tzinfo=UTC)}
        )  # fmt: skip
    return rows


@pytest.fixture
def make_store(tmp_path: Path) -> Callable[..., StoreLayout]:
    """``make_store(records)`` → the layout of a store whose manifest lists ``records`` as ingested."""

    def make(records: Iterable[Mapping[str, Any]], *, feature_sets: tuple[str, ...] = ("mel128",)) -> StoreLayout:
        layout = StoreLayout(str(tmp_path / "store"))
        write_manifest_part(layout, "r1", manifest_rows(records, feature_sets=feature_sets))
        return layout

    return make


@pytest.fixture
def make_feature_store(tmp_path: Path) -> Callable[..., StoreLayout]:
    """``make_feature_store(labels, fill, feature_set=, window_s=, views=)`` → a store with one track per
    label whose rows hold exactly ``fill(track, view, shape)`` (float32 ``(bins, frames)``), written by
    the store's own writer, its manifest listing every track as ingested with the whole window valid."""
    from genreflow.pipeline.audio import ClipWindow
    from genreflow.pipeline.features import get_feature_set
    from genreflow.pipeline.store import FeatureStore, FeatureWriter, RowRange

    def make(labels: list[str], fill: Callable[[int, int, tuple[int, int]], Any], *, feature_set: str = "mel128",
             window_s: float = 4.0, views: tuple[str, ...] = ("mid",)) -> StoreLayout:  # fmt: skip
        layout = StoreLayout(str(tmp_path / "store"))
        fs = get_feature_set(feature_set)
        store = FeatureStore(layout)
        store.ensure([fs], window=ClipWindow(window_s, min_seconds=0), channel_views=views)
        start = store.allocate(len(labels) * len(views))
        shape = (fs.n_bins, fs.n_frames(round(window_s * fs.sample_rate)))
        writer = FeatureWriter(layout, RowRange(start, start + len(labels) * len(views)))
        for track in range(len(labels)):
            values = np.stack([fill(track, view, shape) for view in range(len(views))])
            writer.write(feature_set, start + track * len(views), values)
        writer.flush()
        records = [{"track_id": f"t{i:03d}", "dataset": "folder", "label": label} for i, label in enumerate(labels)]
        rows = manifest_rows(records, feature_sets=(feature_set,))
        for i, row in enumerate(rows):
            row.update(row=start + i * len(views), valid_s=window_s)
        write_manifest_part(layout, "r1", rows)
        store.record_track_ids([r["row"] for r in rows], [r["track_id"] for r in rows])
        return layout

    return make


PROBE_GENRES = ("blues", "classical", "metal")
PROBE_TRACKS = 7  # per genre: 1 test, 1 valid, 5 train in the stratified split
PROBE_SECONDS = 6.0  # two musicnn patches a track


@pytest.fixture(scope="session")
def musicnn_store(tmp_path_factory: pytest.TempPathFactory) -> StoreLayout:
    """A store of real musicnn96 features: synthetic demo genres written straight into Zarr (no decoding)."""
    import numpy as np
    import soxr

    from genreflow.pipeline.audio import ClipWindow
    from genreflow.pipeline.demo import SR, synthesize
    from genreflow.pipeline.features import MUSICNN96
    from genreflow.pipeline.store import FeatureStore, FeatureWriter, RowRange

    layout = StoreLayout(str(tmp_path_factory.mktemp("musicnn") / "store"))
    records = [{"track_id": f"demo:{g}.{i}", "dataset": "demo", "label": g}
               for g in PROBE_GENRES for i in range(PROBE_TRACKS)]  # fmt: skip
    store = FeatureStore(layout)
    store.ensure([MUSICNN96], window=ClipWindow(PROBE_SECONDS, 1.0), channel_views=("mid",))
    store.allocate(len(records))
    writer = FeatureWriter(layout, RowRange(0, len(records)))
    for row, record in enumerate(records):
        audio = synthesize(record["label"], seconds=PROBE_SECONDS, rng=np.random.default_rng(row))
        signal = soxr.resample(audio, SR, MUSICNN96.sample_rate).astype(np.float32)
        size = round(PROBE_SECONDS * MUSICNN96.sample_rate)
        writer.write("musicnn96", row, MUSICNN96.compute_window(signal, sr=MUSICNN96.sample_rate, size=size)[None])
    writer.flush()
    store.record_track_ids(list(range(len(records))), [r["track_id"] for r in records])
    rows = manifest_rows(records, feature_sets=("musicnn96",))
    write_manifest_part(layout, "r1", [row | {"valid_s": PROBE_SECONDS} for row in rows])
    return layout
