"""Files that vanish from their source: retired with a ``removed`` row, never mistaken for an outage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from genreflow.pipeline.datasets import CATALOGUE_COLUMNS
from genreflow.pipeline.errors import CatalogueError
from genreflow.pipeline.features import MEL128
from genreflow.pipeline.ingest import mark_duplicates, select_work, vanished
from genreflow.pipeline.store import MANIFEST_SCHEMA, current_tracks

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _row(uri: str, track_id: str, status: str = "ok", *, at: int = 0, **values) -> dict:
    return {name: None for name in MANIFEST_SCHEMA.names} | {
        "uri": uri, "track_id": track_id, "status": status, "ingested_at": T0 + timedelta(hours=at),
        "size_bytes": 10, "source_version": "v1", "feature_sets": ["mel128"], "dataset": "folder", "label": "rock",
    } | values  # fmt: skip


def _manifest(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows)).sort_values("ingested_at", kind="stable").reset_index(drop=True)


def _catalogue(*uris: str) -> pd.DataFrame:
    frame = pd.DataFrame({"uri": list(uris), "track_id": None, "dataset": "folder", "label": "rock", "split": None,
                          "fold": None, "size_bytes": 10, "source_version": "v1"})  # fmt: skip
    return frame.astype(CATALOGUE_COLUMNS)


def test_a_vanished_file_under_the_source_is_retired_and_other_sources_are_kept():
    manifest = _manifest(_row("/lib/a.wav", "sha256:a"), _row("/lib/b.wav", "sha256:b"), _row("/other/c.wav", "c"))
    removed = vanished(_catalogue("/lib/a.wav"), manifest, source="/lib", run_id="r2")
    assert [(r["uri"], r["track_id"], r["status"], r["row"]) for r in removed] == [
        ("/lib/b.wav", "sha256:b", "removed", None)
    ]
    assert removed[0]["label"] == "rock" and removed[0]["error"] == "no longer in the source"
    assert vanished(_catalogue("/lib/a.wav"), manifest, source="/li", run_id="r2") == []  # a prefix, not a folder


def test_a_source_listing_nothing_is_an_outage_unless_allowed():
    manifest = _manifest(_row("/lib/a.wav", "a"), _row("/lib/b.wav", "b"))
    with pytest.raises(CatalogueError, match="lists no audio files, but the store holds 2 from it"):
        vanished(_catalogue(), manifest, source="/lib", run_id="r2")
    assert len(vanished(_catalogue(), manifest, source="/lib", run_id="r2", allow_empty_source=True)) == 2
    assert vanished(_catalogue(), manifest, source="/elsewhere", run_id="r2") == []  # holds nothing from there


def test_removed_tracks_are_not_current_and_come_back_when_the_file_returns():
    manifest = _manifest(_row("/lib/a.wav", "a"), _row("/lib/b.wav", "b"), _row("/lib/b.wav", "b", "removed", at=1))
    assert list(current_tracks(manifest)["track_id"]) == ["a"]
    work = select_work(_catalogue("/lib/a.wav", "/lib/b.wav"), manifest, feature_sets=[MEL128])
    assert list(zip(work["uri"], work["reason"], strict=True)) == [("/lib/b.wav", "restored")]
    assert vanished(_catalogue("/lib/a.wav"), manifest, source="/lib", run_id="r3") == []  # retired once


def test_a_renamed_file_keeps_its_track_under_the_new_name():
    """The same content-hash id under a new name, the old name gone: one track, not a skipped duplicate."""
    manifest = _manifest(_row("/lib/old.wav", "sha256:x", row=0))
    removed = vanished(_catalogue("/lib/new.wav"), manifest, source="/lib", run_id="r2")
    arrived = _row("/lib/new.wav", "sha256:x", at=1, row=1)
    committed = mark_duplicates([*removed, arrived], manifest)
    assert [(r["uri"], r["status"]) for r in committed] == [("/lib/old.wav", "removed"), ("/lib/new.wav", "ok")]
    after = _manifest(*manifest.to_dict("records"), *({**r, "ingested_at": T0 + timedelta(hours=1)} for r in committed))
    assert list(current_tracks(after)["uri"]) == ["/lib/new.wav"]


def test_a_deleted_duplicate_does_not_retire_the_original():
    manifest = _manifest(
        _row("/lib/a.wav", "sha256:x"),
        _row("/lib/copy.wav", "sha256:x", "skipped", at=1, error="duplicate of /lib/a.wav"),
        _row("/lib/copy.wav", "sha256:x", "removed", at=2),
    )
    assert list(current_tracks(manifest)["uri"]) == ["/lib/a.wav"]


@pytest.mark.parametrize("change", ["deleted", "edited"])
def test_the_copy_of_a_deleted_or_edited_original_takes_its_track_over(change):
    """`b.wav` was skipped as a duplicate of `a.wav`; once `a.wav` is gone or holds other audio, `b.wav`
    is selected again and, committed, holds the track."""
    manifest = _manifest(
        _row("/lib/a.wav", "sha256:x", row=0),
        _row("/lib/b.wav", "sha256:x", "skipped", at=1, error="duplicate of /lib/a.wav"),
    )
    listing = _catalogue("/lib/b.wav") if change == "deleted" else _catalogue("/lib/a.wav", "/lib/b.wav")
    if change == "edited":
        listing.loc[0, "source_version"] = "v2"
    work = select_work(listing, manifest, feature_sets=[MEL128])
    expected = {"/lib/b.wav": "restored"} | ({"/lib/a.wav": "changed"} if change == "edited" else {})
    assert dict(zip(work["uri"], work["reason"], strict=True)) == expected
    removed = vanished(listing, manifest, source="/lib", run_id="r2")
    arrived = [_row("/lib/b.wav", "sha256:x", at=2, row=2)]
    if change == "edited":
        arrived.insert(0, _row("/lib/a.wav", "sha256:y", at=2, row=1))
    committed = mark_duplicates([*removed, *arrived], manifest)
    assert {r["uri"]: r["status"] for r in committed}["/lib/b.wav"] == "ok"
    after = _manifest(*manifest.to_dict("records"), *committed)
    assert sorted(current_tracks(after)["track_id"]) == (
        ["sha256:x"] if change == "deleted" else ["sha256:x", "sha256:y"]
    )
