"""Stores holding only a manifest: what ``labelled_tracks`` reads, built without decoding audio."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
