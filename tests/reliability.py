"""The reliability table (`make reliability`, and the end of `make test`): every test that injects a
fault records what it injected and what it then found in the real outputs, and the session prints one
table. Counts come from the stores, Parquet files and outputs the runs left, never from configuration.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow.parquet as pq

from genreflow.pipeline.store import StoreLayout, latest_rows, open_features, read_manifest
from genreflow.pipeline.uri import filesystem


@dataclass
class Outcome:
    """One scenario: inputs tried, faults injected (by kind), runs that completed afterwards, and
    what a reader then found wrong (each must be 0)."""

    scenario: str
    input_kinds: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    runs_completed: int = 0
    tracks_lost: int = 0
    duplicate_rows: int = 0
    half_written: int = 0
    secrets_found: int = 0


LEDGER: list[Outcome] = []


def record(scenario: str, **counts: Any) -> Outcome:
    """Add one scenario's outcome to the table (call it before the test's assertions, so a failing
    test still shows what it found)."""
    outcome = Outcome(scenario, **counts)
    outcome.faults = Counter(outcome.faults)
    LEDGER.append(outcome)
    return outcome


@dataclass(frozen=True)
class StoreCheck:
    """What a reader finds in a store after a fault: tracks that should be ``ok`` and are not,
    tracks held twice (one version of a file committed twice, or two feature rows for one track id),
    and Parquet files that do not read whole."""

    tracks_lost: int
    duplicate_rows: int
    half_written: int

    def as_counts(self) -> dict[str, int]:
        return {"tracks_lost": self.tracks_lost, "duplicate_rows": self.duplicate_rows,
                "half_written": self.half_written}  # fmt: skip


def check_store(
    store: str, expected_ok: Iterable[str], *, storage_options: Mapping[str, Any] | None = None
) -> StoreCheck:
    """Count :class:`StoreCheck` for ``store``, whose files ``expected_ok`` (URIs) should all be ``ok``.
    The manifest is append-only: a file that changed has a row per version, and a retired one its
    ``removed`` row; one version (URI, source version and content hash) committed twice is a duplicate."""
    layout = StoreLayout(store, dict(storage_options or {}))
    manifest = read_manifest(layout)
    current = latest_rows(manifest, by="uri")
    ok = set(current.loc[current["status"] == "ok", "uri"])
    versions = manifest[manifest["status"] != "removed"]
    ids = [value for value in open_features(layout)["track_id"][:] if value]
    duplicates = int(versions.duplicated(["uri", "source_version", "content_hash"]).sum()) + (len(ids) - len(set(ids)))
    return StoreCheck(len(set(expected_ok) - ok), duplicates, unreadable_parquet(store, storage_options))


def check_scores(out: str, expected_tracks: Iterable[str]) -> StoreCheck:
    """:class:`StoreCheck` for a scores folder: tracks of ``expected_tracks`` without a row, rows
    beyond one per track, and Parquet files that do not read whole."""
    import pandas as pd

    tracks = pd.read_parquet(out)["track_id"]
    lost = len(set(expected_tracks) - set(tracks))
    return StoreCheck(lost, len(tracks) - tracks.nunique(), unreadable_parquet(out))


def unreadable_parquet(root: str, storage_options: Mapping[str, Any] | None = None) -> int:
    """Parquet files under ``root`` that a reader would open (not hidden temporaries) and that do
    not read whole."""
    fs, path = filesystem(root, storage_options)
    bad = 0
    for file in fs.find(path):
        name = file.rsplit("/", 1)[-1]
        if not name.endswith(".parquet") or name.startswith("."):
            continue
        try:
            pq.read_table(file, filesystem=fs)
        except Exception:  # any failure to read is what is being counted
            bad += 1
    return bad


COLUMNS = ("scenario", "input kinds", "faults injected", "runs completed", "tracks lost", "duplicate rows",
           "half-written files seen", "secrets found")  # fmt: skip


def table(outcomes: list[Outcome]) -> str:
    """The ledger as a Markdown table, with a total row."""
    total = Outcome("total", faults=sum((o.faults for o in outcomes), Counter()))
    for name in ("input_kinds", "runs_completed", "tracks_lost", "duplicate_rows", "half_written", "secrets_found"):
        setattr(total, name, sum(getattr(o, name) for o in outcomes))
    rows = [*outcomes, total]

    def cells(o: Outcome) -> list[str]:
        faults = ", ".join(f"{kind} {n}" for kind, n in sorted(o.faults.items())) or "-"
        return [o.scenario, str(o.input_kinds or "-"), faults, str(o.runs_completed), str(o.tracks_lost),
                str(o.duplicate_rows), str(o.half_written), str(o.secrets_found)]  # fmt: skip

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells(o)) + " |" for o in rows]
    return "\n".join(lines)
