"""``genreflow doctor``: what in a store is damaged or left behind, and the repairs that are safe.

:func:`check_store` only reads. It looks where readers and the next run would trip: manifest parts
that do not read, ``ok`` tracks whose feature row lies past the arrays or whose ``track_id`` row names
another track, arrays of unequal length, receipts of runs that died before their commit, a lease whose
holder is dead or that does not parse, production pointers to versions that do not exist, model files
that do not open or hold code, and score files that do not read. Each fault is one :class:`Finding`.

:func:`repair_store` does only what a run would do anyway, under the store's lease: taking the lease
takes over one whose holder died (so that lease is cleared), and the receipts of interrupted runs are
committed as the next ingest would commit them. Damaged files are reported, never deleted.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .. import registry
from ..errors import StoreError
from ..training.config import PRODUCTION
from ..uri import filesystem, join
from .features import TRACK_ID, open_features
from .layout import StoreLayout
from .lease import LeaseInfo, _stale, acquire_lease, read_lease
from .manifest import MANIFEST_SCHEMA, current_tracks

EXAMPLES = 3  # track ids named in a finding that counts many tracks


@dataclass(frozen=True)
class Finding:
    """One fault: its kind (``manifest``, ``features``, ``receipts``, ``lease``, ``models``, ``scores``),
    where it is (a file, folder or array) and what is wrong, printed as one line."""

    kind: str
    where: str
    problem: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.where}: {self.problem}"


@dataclass(frozen=True)
class Repair:
    """What :func:`repair_store` did: the dead run whose lease it took over, the interrupted runs it
    committed and their rows."""

    took_over: LeaseInfo | None
    recovered: dict[str, int]

    def lines(self) -> list[str]:
        done = [f"repaired: took over the lease of {self.took_over.describe()}"] if self.took_over else []
        done += [f"repaired: committed {n} rows of interrupted run {run}" for run, n in self.recovered.items()]
        return done


def require_store(layout: StoreLayout) -> None:
    """Raise unless the root is a store folder: a typo must not read as a clean store.

    Raises
    ------
    StoreError
        Naming the root.
    """
    fs, root = filesystem(layout.root, layout.storage_options)
    if not fs.isdir(root):
        raise StoreError(f"{layout.root}: no store here ({'a file' if fs.exists(root) else 'no such folder'})")


def check_store(layout: StoreLayout) -> list[Finding]:
    """Every fault found in the store, read-only (no lease needed; a run writing meanwhile may show as
    a transient finding about its own rows)."""
    manifest, findings = _manifest(layout)
    lease, lease_findings = _lease(layout)
    return [
        *findings,
        *_features(layout, manifest),
        *lease_findings,
        *_receipts(layout, live=lease),
        *_models(layout),
        *_scores(layout),
    ]


def repair_store(layout: StoreLayout, *, wait_s: float = 0.0) -> Repair:
    """The safe repairs, under the store's lease (waiting up to ``wait_s`` for a live run's).

    Raises
    ------
    LeaseHeld
        A live run holds the lease: it is no dead run's, and its receipts are its own.
    """
    from ..ingest import recover_interrupted_runs
    from .features import FeatureStore

    with acquire_lease(layout, holder="doctor --repair", wait_s=wait_s) as lease:
        fs, runs = filesystem(layout.runs, layout.storage_options)
        recovered = recover_interrupted_runs(layout, FeatureStore(layout)) if fs.isdir(runs) else {}
        return Repair(lease.took_over, {run_id: len(run.rows) for run_id, run in recovered.items()})


def _manifest(layout: StoreLayout) -> tuple[pd.DataFrame, list[Finding]]:
    """The rows of every manifest part that reads, and a finding for each that does not."""
    tables, findings = [], []
    for uri, table, error in _parquet_files(layout, layout.manifest):
        if table is None:
            findings.append(Finding("manifest", uri, f"does not read ({error}); readers of the store fail on it"))
        else:
            tables.append(table.select([n for n in MANIFEST_SCHEMA.names if n in table.column_names]).to_pandas())
    manifest = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=MANIFEST_SCHEMA.names)
    if "ingested_at" in manifest:
        manifest = manifest.sort_values("ingested_at", kind="stable").reset_index(drop=True)
    return manifest, findings


def _features(layout: StoreLayout, manifest: pd.DataFrame) -> list[Finding]:
    """``ok`` tracks against the arrays: rows inside every array, and the ``track_id`` row naming them."""
    current = current_tracks(manifest)
    ok = current[current["status"] == "ok"] if len(current) else current
    try:
        group = open_features(layout, mode="r")
    except StoreError:
        missing = Finding("features", layout.features, f"missing, yet {len(ok)} ok tracks point into it")
        return [missing] if len(ok) else []
    if TRACK_ID not in group:
        return [Finding("features", f"{layout.features}/{TRACK_ID}", "missing: no row says which track it holds")]
    track_ids = group[TRACK_ID][:]
    n_rows = len(track_ids)
    findings = [
        Finding("features", f"{layout.features}/{name}/data", f"{array.shape[0]} rows, but {TRACK_ID} has {n_rows}")
        for name, array in ((name, group[name].get("data")) for name, _ in sorted(group.groups()))
        if array is not None and array.shape[0] != n_rows
    ]
    views = len(group.attrs.get("channel_views", ("mid",)))
    rows = ok["row"].astype("Int64")
    past = ok[(rows.isna() | (rows < 0) | (rows + views > n_rows)).fillna(True).astype(bool)]
    if len(past):
        findings.append(Finding("features", layout.features, f"{len(past)} ok tracks have no row inside the "
                                f"{n_rows} rows of the arrays (e.g. {_examples(past)})"))  # fmt: skip
    inside = ok[~ok.index.isin(past.index)]
    named = [str(track_ids[int(row)]) for row in inside["row"]]
    wrong = inside[[stored != track for stored, track in zip(named, inside["track_id"], strict=True)]]
    if len(wrong):
        findings.append(Finding("features", f"{layout.features}/{TRACK_ID}", f"{len(wrong)} ok tracks' rows "
                                f"name another track or none (e.g. {_examples(wrong)})"))  # fmt: skip
    return findings


def _lease(layout: StoreLayout) -> tuple[LeaseInfo | None, list[Finding]]:
    """The live lease (``None`` if none), and a finding for a lock that does not parse or whose
    holder is gone (expired, or its process is gone from this host)."""
    try:
        info = read_lease(layout)
    except (StoreError, ValueError) as error:
        return None, [Finding("lease", layout.lease, f"does not read ({error}); writers cannot take the store")]
    if info is None or not _stale(info):
        return info, []
    return None, [Finding("lease", layout.lease, f"held by a dead run: {info.describe()}")]


def _receipts(layout: StoreLayout, *, live: LeaseInfo | None) -> list[Finding]:
    """Receipt folders of runs that are not the live ingest: they died before their commit."""
    fs, runs = filesystem(layout.runs, layout.storage_options)
    if not fs.isdir(runs):
        return []
    findings = []
    for run_dir in sorted(fs.ls(runs, detail=False)):
        run_id = run_dir.rstrip("/").rsplit("/", 1)[-1]
        if live is not None and _same_run(live.holder.removeprefix("ingest "), run_id):
            continue  # the run writing now (or one of its batches)
        committed = fs.exists(filesystem(layout.manifest_part(run_id), layout.storage_options)[1])
        what = "committed, only its clean-up was lost" if committed else "interrupted before its commit"
        shards = sum(1 for p in fs.ls(run_dir, detail=False) if p.endswith(".parquet"))
        findings.append(Finding("receipts", layout.run_dir(run_id), f"{shards} shard receipts of a run {what} "
                                "(the next ingest, or `genreflow doctor --repair`, commits them)"))  # fmt: skip
    return findings


def _same_run(live_run: str, receipts_run: str) -> bool:
    """Whether a receipts folder is the live run's own, or one of its batches' (``<run>-b00001``)."""
    return receipts_run == live_run or receipts_run.startswith(f"{live_run}-b")


def _models(layout: StoreLayout) -> list[Finding]:
    """Production pointers that name no complete version, and versions whose files do not open safely."""
    fs, root = filesystem(layout.models, layout.storage_options)
    if not fs.isdir(root):
        return []
    versions: dict[str, set[str]] = {}
    for entry in registry.list_models(layout):
        versions.setdefault(entry["name"], set()).add(entry["version"])
    findings = []
    for name_dir in sorted(fs.ls(root, detail=False)):
        name = name_dir.rstrip("/").rsplit("/", 1)[-1]
        pointer = join(layout.model_dir(name), PRODUCTION)
        pointer_path = filesystem(pointer, layout.storage_options)[1]
        promoted = fs.cat_file(pointer_path).decode().strip() if fs.exists(pointer_path) else None
        if promoted is not None and promoted not in versions.get(name, set()):
            findings.append(Finding("models", pointer, f"names version {promoted!r}, which is not a complete "
                                    f"version of {name} (`genreflow models promote` another)"))  # fmt: skip
        for version in sorted(versions.get(name, set())):
            ref = registry.ModelRef(name, version)
            try:
                registry.require_safe_model(layout, ref)
                registry.read_labels(layout, ref)
            except (registry.RegistryError, OSError, ValueError) as error:
                findings.append(Finding("models", layout.model_dir(name, version), str(error)))
    return findings


def _scores(layout: StoreLayout) -> list[Finding]:
    """Score files under ``<root>/scores`` that do not read."""
    fs, root = filesystem(layout.scores, layout.storage_options)
    if not fs.isdir(root):
        return []
    files = sorted(p for p in fs.find(root) if p.endswith(".parquet"))
    findings = []
    for path in files:
        try:
            pq.read_table(path, filesystem=fs)
        except (OSError, ValueError) as error:
            uri = join(layout.scores, path[len(root.rstrip("/")) :])
            findings.append(Finding("scores", uri, f"does not read ({_first_line(error)}); rescoring rewrites it"))
    return findings


def _parquet_files(layout: StoreLayout, folder: str) -> Iterator[tuple[str, pa.Table | None, str]]:
    """Each ``*.parquet`` directly under ``folder``: its URI, and its table or why it does not read."""
    fs, path = filesystem(folder, layout.storage_options)
    if not fs.isdir(path):
        return
    for file in sorted(p for p in fs.ls(path, detail=False) if p.endswith(".parquet")):
        uri = join(folder, file.rsplit("/", 1)[-1])
        try:
            yield uri, pq.read_table(file, filesystem=fs), ""
        except (OSError, ValueError) as error:
            yield uri, None, _first_line(error)


def _examples(tracks: pd.DataFrame) -> str:
    head = tracks.head(EXAMPLES)
    return ", ".join(f"{track} row {row}" for track, row in zip(head["track_id"], head["row"], strict=True))


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
