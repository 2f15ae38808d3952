"""The bad-input corpus (:mod:`tests.corpus`, issue #12) through the real ingest flow, in process.

Every kind gets the outcome a person expects, every reason is one a person reads, the counts add
up (summary and manifest), and a second run finds nothing to do. Files that change between listing
and decoding are changed for real: after the flow's own listing, before its shards decode.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import tracemalloc
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

import tests.services  # noqa: F401  the Prefect API server, started before anything imports Prefect
from genreflow.pipeline import extract
from genreflow.pipeline.audio import ClipWindow, decode_clip
from genreflow.pipeline.store import StoreLayout, latest_rows, read_manifest
from tests import reliability
from tests.corpus import EITHER, FAILED, IGNORED, KINDS, OK, SKIPPED, WINDOW_S, Kind, after_listing, write_corpus

STATIC = tuple(kind for kind in KINDS if kind.race is None)
RACES = tuple(kind for kind in KINDS if kind.race is not None)
# What a decoder or Python says when nobody turned it into a sentence.
RAW = re.compile(
    r"index out of range|\[Errno \d+\]|errno|Traceback|object has no attribute|NoneType|unsupported operand|"
    r"unexpected keyword|cannot unpack|invalid literal|division by zero|\b[A-Z]\w*(Error|Exception)\b|"
    r"Garbled|Unspecified internal error|^Error : |\\x[0-9a-f]{2}"
)
MPG123_NOISE = re.compile(r"mpg123|Illegal Audio-MPEG-Header|resync|Xing stream", re.IGNORECASE)


def _ingest(source: Path, store: Path, **kwargs):
    from genreflow.flows.ingest import ingest_flow

    return ingest_flow(
        str(source),
        str(store),
        feature_sets=["mel128"],
        window_s=WINDOW_S,
        settings=None,
        show_progress=False,
        **kwargs,
    )


def _by_uri(store: Path) -> dict[str, dict]:
    rows = latest_rows(read_manifest(StoreLayout(str(store))), by="uri")
    return {row["uri"]: row for row in rows.to_dict("records")}


def _readable(reason: str | None) -> bool:
    return bool(reason) and "\n" not in reason and len(reason) < 300 and not RAW.search(reason)


def _check(kind: Kind, row: dict | None) -> str | None:
    """What is wrong with ``row`` (None when nothing listed it) for ``kind``, or None."""
    if kind.status == IGNORED:
        return None if row is None else f"listed, became {row['status']}: {row['error']}"
    if row is None:
        return "not listed"
    status, error = row["status"], None if pd.isna(row["error"]) else row["error"]
    if kind.status == EITHER:
        return None if status == OK or (status == FAILED and _readable(error)) else f"{status}: {error}"
    if status != kind.status:
        return f"expected {kind.status}, got {status}: {error}"
    if kind.reason is not None and not re.search(kind.reason, error or ""):
        return f"reason {error!r} does not match {kind.reason!r}"
    return None


@pytest.mark.integration
@pytest.mark.reliability
def test_every_kind_gets_the_outcome_a_person_expects(tmp_path, monkeypatch):
    corpus = tmp_path / "corpus"
    write_corpus(corpus, STATIC)
    monkeypatch.setattr(extract, "IN_MEMORY_LIMIT", 2**20)  # the long files: hashed streaming, decoded by seeking
    store = tmp_path / "store"
    summary = _ingest(corpus, store, shard_size=12)  # several shards side by side on the flow's threads
    rows = _by_uri(store)

    wrong = {kind.name: problem for kind in STATIC if (problem := _check(kind, rows.get(str(corpus / kind.path))))}
    assert wrong == {}
    expected = {str(corpus / kind.path) for kind in STATIC if kind.status != IGNORED}
    assert set(rows) == expected  # nothing listed that the table does not name
    unreadable = {uri: row["error"] for uri, row in rows.items() if row["status"] != OK and not _readable(row["error"])}
    assert unreadable == {}

    assert summary.dataset == "folder"  # AppleDouble files and folder links did not hide the layout
    assert summary.listed == summary.selected == len(expected)
    assert summary.unprocessed == () and summary.recovered_runs == ()
    assert set(summary.counts) <= {OK, FAILED, SKIPPED}
    assert sum(summary.counts.values()) == summary.listed  # listed = ok + failed + skipped + removed (none yet)
    assert Counter(row["status"] for row in rows.values()) == summary.counts
    assert len(summary.failures) == summary.counts[FAILED]
    failed = {uri: row["error"] for uri, row in rows.items() if row["status"] == FAILED}
    assert {f.uri: f.reason for f in summary.failures} == failed
    per_label = Counter(kind.path.split("/")[0] for kind in STATIC if kind.status != IGNORED)
    assert {label: sum(counts.values()) for label, counts in summary.by_label.items()} == per_label
    strict = {status: sum(kind.status == status for kind in STATIC) for status in (FAILED, SKIPPED)}
    assert summary.counts[SKIPPED] == strict[SKIPPED]
    assert strict[FAILED] <= summary.counts[FAILED] <= strict[FAILED] + sum(kind.status == EITHER for kind in STATIC)

    long_mp3 = rows[str(corpus / "hiphop/sixty minutes.mp3")]
    assert long_mp3["duration_s"] == pytest.approx(3600, rel=0.005)
    assert long_mp3["window_start_s"] == pytest.approx(long_mp3["duration_s"] / 2 - WINDOW_S / 2, abs=0.1)
    six = rows[str(corpus / "pop/extensible 6ch.wav")]
    assert (six["channels"], six["sample_rate"]) == (6, 22050)

    again = _ingest(corpus, store, shard_size=12)
    expected_ok = [str(corpus / kind.path) for kind in STATIC if kind.status == OK]
    found = reliability.check_store(str(store), expected_ok)
    reliability.record("bad input corpus", input_kinds=len(STATIC), runs_completed=2,
                       faults={"bad or odd input file": sum(k.status != OK for k in STATIC)},
                       **found.as_counts())  # fmt: skip
    assert found == reliability.StoreCheck(0, 0, 0)
    assert (again.listed, again.selected, again.counts) == (summary.listed, 0, {})
    assert len(read_manifest(StoreLayout(str(store)))) == summary.listed  # nothing was written twice


@pytest.mark.integration
@pytest.mark.reliability
def test_files_that_change_between_listing_and_decoding(tmp_path, monkeypatch):
    from genreflow.flows import ingest as flow_module

    plain = next(kind for kind in STATIC if kind.name == "stereo")
    source, store = tmp_path / "source", tmp_path / "store"
    write_corpus(source, (plain, *RACES))
    listing = flow_module.scan_source

    def listing_then_changes(*args, **kwargs):  # the flow's own listing, then the world moves on
        catalogue = listing(*args, **kwargs)
        after_listing(source, RACES)
        return catalogue

    monkeypatch.setattr(flow_module, "scan_source", listing_then_changes)
    first = _ingest(source, store, dataset="folder")
    monkeypatch.undo()
    rows = _by_uri(store)
    wrong = {
        kind.name: problem for kind in (plain, *RACES) if (problem := _check(kind, rows.get(str(source / kind.path))))
    }
    assert wrong == {}
    assert first.listed == first.selected == sum(first.counts.values()) == 4

    still = next(kind for kind in RACES if kind.name == "still being written")
    with (source / still.path).open("ab") as out:  # the writer finishes: 1 + 2 s were there, 6 s declared
        out.write(b"\0\1" * (3 * 22050))
    second = _ingest(source, store, dataset="folder")
    # the vanished file is retired; the two that grew after their listing are read again, now whole
    assert (second.listed, second.selected, second.counts) == (3, 2, {OK: 2, "removed": 1})
    rows = _by_uri(store)
    assert {Path(uri).name: row["status"] for uri, row in rows.items()} == {
        "2ch.wav": OK,
        "vanishes.wav": "removed",
        "still writing.wav": OK,
        "just finished.wav": OK,
    }
    assert len(rows) == second.listed + second.counts["removed"]  # listed + removed = every file ever seen
    assert _ingest(source, store, dataset="folder").selected == 0
    ok_now = [uri for uri, row in rows.items() if not uri.endswith("vanishes.wav")]
    found = reliability.check_store(str(store), ok_now)
    reliability.record("files changed after listing", input_kinds=len(RACES), runs_completed=3,
                       faults={"file changed after listing": len(RACES)}, **found.as_counts())  # fmt: skip
    assert found == reliability.StoreCheck(0, 0, 0)


@pytest.mark.parametrize("name", ["20-minute wav", "60-minute mp3"])
def test_long_files_decode_their_window_without_holding_the_file(tmp_path, name):
    kind = write_corpus(tmp_path, tuple(k for k in KINDS if k.name == name))[0]
    path = tmp_path / kind.path
    with path.open("rb") as handle:  # a file object, as load_track decodes files over its in-memory limit
        tracemalloc.start()
        try:
            clip = decode_clip(handle, window=ClipWindow(seconds=WINDOW_S))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    minutes = 20 if "20" in name else 60
    assert clip.duration_s == pytest.approx(minutes * 60, rel=0.005)
    assert clip.window_start_s == pytest.approx(clip.duration_s / 2 - WINDOW_S / 2, abs=0.1)
    assert clip.samples.shape == (1, WINDOW_S * 8000)
    assert peak < 2 * clip.samples.nbytes + 2**18 < path.stat().st_size / 4


_DECODE_DAMAGED_MP3 = textwrap.dedent(
    """
    import os, sys, threading
    from concurrent.futures import ThreadPoolExecutor

    import soundfile as sf

    from genreflow.pipeline.audio import ClipWindow, decode_clip, silence_mpg123
    from genreflow.pipeline.errors import DecodeError
    from genreflow.pipeline.extract import TrackRef, load_track

    paths = sys.argv[1:]
    window = ClipWindow(seconds=5.0)

    def load(path):
        ref = TrackRef(uri=path, dataset="folder", size_bytes=os.path.getsize(path), source_version="1")
        return load_track(ref, window=window)[2]

    def chatter():  # another thread's output while the decodes run: it must all arrive
        for n in range(40):
            os.write(2, f"kept line {n}\\n".encode())

    writer = threading.Thread(target=chatter)
    writer.start()
    with ThreadPoolExecutor(4) as pool:
        reasons = list(pool.map(load, paths * 5))
    writer.join()
    for path in paths:
        try:
            decode_clip(path, window=window)  # a path, not a file object: libsndfile reads it itself
        except DecodeError as error:
            reasons.append(str(error))
    with silence_mpg123():
        os.write(2, b"kept inside\\n")
        os.write(2, b"Note: Trying to resync...\\n")
    print("\\n".join(str(r) for r in reasons))
    sys.stderr.flush()
    os.write(2, b"--- unfiltered ---\\n")
    for path in paths:  # soundfile alone: libmpg123 speaks
        try:
            sf.read(path)
        except sf.LibsndfileError:
            pass
    """
)


def test_a_damaged_mp3_leaves_no_mpg123_noise_on_stderr(tmp_path):
    damaged = ("mp3 frames overwritten", "mp3 cut at 100 bytes", "mp3 cut in half")
    kinds = write_corpus(tmp_path, tuple(kind for kind in KINDS if kind.name in damaged))
    paths = [str(tmp_path / kind.path) for kind in kinds]
    done = subprocess.run(
        [sys.executable, "-c", _DECODE_DAMAGED_MP3, *paths], capture_output=True, text=True, timeout=60, check=True
    )
    filtered, unfiltered = done.stderr.split("--- unfiltered ---\n")
    assert MPG123_NOISE.search(unfiltered)  # the files do make libmpg123 speak...
    assert not MPG123_NOISE.search(filtered), filtered  # ...but not while genreflow decodes them
    assert sorted(re.findall(r"kept line \d+", filtered)) == sorted(f"kept line {n}" for n in range(40))
    assert "kept inside" in filtered
    reasons = done.stdout.splitlines()
    assert len(reasons) == 5 * len(paths) + len(paths)
    assert all(r.startswith(("corrupt or truncated", "truncated")) for r in reasons), reasons
