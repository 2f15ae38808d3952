"""Storage faults on local disk, for real: a store on a small tmpfs that fills up mid-ingest, then is
given more room, and the same mount made read-only. The command fails with one line naming the store
and an exit code that says so (4: storage; 2: refused before any work), readers never see a half-written
file, and the run after space is freed completes to a clean run's values."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genreflow.pipeline.store import StoreLayout, read_manifest, read_rows
from genreflow.pipeline.store.doctor import check_store
from tests import reliability
from tests.conftest import tone

pytestmark = [pytest.mark.integration, pytest.mark.reliability]
GENREFLOW = str(Path(sys.executable).parent / "genreflow")
TRACKS = 12  # 10-s clips: about 80 KiB of mel128 each, so a 500 KiB store fills up about half way


@pytest.fixture
def small_disk(tmp_path):
    """A 500 KiB tmpfs (skipped where this process may not mount one: it needs root)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=500k", "tmpfs", str(mount)], capture_output=True)
    if made.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _remount(mount: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(mount)], check=True)


@pytest.fixture
def source(tmp_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    for i in range(TRACKS):
        sf.write(folder / f"t{i:02d}.wav", tone(10, freq=150 + 40 * i), 22050)
    return folder


def _genreflow(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([GENREFLOW, *args], capture_output=True, text=True, env=dict(os.environ), timeout=300)


def _ingest(source: Path, store: Path) -> subprocess.CompletedProcess:
    # shards of two tracks: the first ones fit, a later one meets the full disk
    return _genreflow("ingest", str(source), "--store", str(store), "--features", "mel128", "--dataset", "unlabelled",
                      "--shard-size", "2")  # fmt: skip


def _values(store: Path) -> dict[str, np.ndarray]:
    layout = StoreLayout(str(store))
    manifest = read_manifest(layout)
    assert manifest["uri"].is_unique  # one row per file
    ok = manifest[manifest["status"] == "ok"].sort_values("uri")
    if not len(ok):
        return {}
    return dict(zip(ok["uri"], read_rows(layout, "mel128", list(ok["row"].astype(int))), strict=True))


def test_a_store_whose_disk_fills_up_stops_in_one_line_and_completes_once_there_is_room(small_disk, source, tmp_path):
    store = small_disk / "store"
    full = _ingest(source, store)
    assert full.returncode == 4, full.stdout + full.stderr
    assert full.stderr.strip() == (
        f"genreflow: error: store {store}: No space left on device; the store keeps what was committed: "
        "run again once it is fixed"
    )
    committed = _values(store)  # every manifest part and every committed row reads
    assert 0 < len(committed) < TRACKS
    assert check_store(StoreLayout(str(store))) == []
    assert not [p for p in store.rglob("*") if p.name.endswith(".tmp")]  # no half-written copy left behind

    _remount(small_disk, "size=16m")
    again = _ingest(source, store)
    assert again.returncode == 0, again.stderr
    assert f"{TRACKS - len(committed)} new or changed" in again.stdout  # the committed ones stay done
    clean_store = tmp_path / "clean"
    assert _ingest(source, clean_store).returncode == 0
    values, clean = _values(store), _values(clean_store)
    found = reliability.check_store(str(store), [str(p) for p in source.iterdir()])
    reliability.record("disk full mid-ingest", faults={"disk full (ENOSPC)": 1}, runs_completed=1, **found.as_counts())
    assert found == reliability.StoreCheck(0, 0, 0)
    assert sorted(values) == sorted(clean) and len(values) == TRACKS
    for uri, expected in clean.items():
        np.testing.assert_array_equal(values[uri], expected)


def test_a_read_only_store_is_refused_before_any_work_and_still_reads(small_disk, source):
    store = small_disk / "store"
    _remount(small_disk, "size=16m")
    assert _ingest(source, store).returncode == 0
    _remount(small_disk, "ro")
    (source / "t00.wav").touch()  # something to do
    for command in (
        ("ingest", str(source), "--store", str(store), "--features", "mel128", "--dataset", "unlabelled"),
        ("score", "--store", str(store), "--model", "musicnn-msd-tags"),
    ):
        started = time.monotonic()
        refused = _genreflow(*command)
        assert refused.returncode == 2, refused.stderr
        expected = f"genreflow: error: store {store}: {store} is on a read-only filesystem"
        assert refused.stderr.strip() == expected, command
        assert time.monotonic() - started < 15  # before the Prefect server or any worker
    assert len(_values(store)) == TRACKS
    found = reliability.check_store(str(store), [str(p) for p in source.iterdir()])
    reliability.record("read-only store", faults={"read-only store": 2}, runs_completed=2, **found.as_counts())
    assert found == reliability.StoreCheck(0, 0, 0)
    listed = _genreflow("models", "list", "--store", str(store))
    assert listed.returncode == 0, listed.stderr
    assert _genreflow("doctor", "--store", str(store)).stdout.strip() == f"{store}: no findings"
