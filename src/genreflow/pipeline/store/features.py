"""The Zarr feature arrays: created and grown by the flow, filled by shard writers, read by models.

Every feature set shares one row index: row ``r`` of each ``<set>/data`` holds the same track
view. The flow grows all arrays once per run and hands each shard a disjoint :class:`RowRange`;
a :class:`FeatureWriter` refuses rows outside its range, and each row is its own chunk, so no two
writers ever touch one chunk.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from ..audio import CHANNEL_VIEWS, ClipWindow
from ..errors import ParameterError, StoreError
from ..features import FeatureSet
from ..uri import is_remote
from .layout import StoreLayout

TRACK_ID = "track_id"
ID_CHUNK = 4096
FORMAT_VERSION = 1
ROWS_PER_WRITE = 8  # rows a writer buffers per array: each zarr write call costs about as much as encoding a row
# zstd's fastest level: float16 spectrogram mantissas barely compress, and level 3 only saved 0.5 %
# of the bytes while costing a third more time per row.
CHUNK_CODEC = ZstdCodec(level=1)


@dataclass(frozen=True)
class RowRange:
    """Rows ``[start, stop)`` of the feature arrays, owned by one shard."""

    start: int
    stop: int

    def __contains__(self, row: object) -> bool:
        return isinstance(row, int | np.integer) and self.start <= row < self.stop


def open_features(layout: StoreLayout, *, mode: str = "r") -> zarr.Group:
    """Open ``features.zarr`` (``mode="r"`` read-only, ``"a"`` read/write, creating it)."""
    options = {"storage_options": dict(layout.storage_options)} if is_remote(layout.root) else {}
    try:
        return zarr.open_group(layout.features, mode=mode, zarr_format=3, **options)
    except FileNotFoundError as error:
        raise StoreError(f"{layout.features}: no feature store here (run `genreflow ingest` first)") from error


def holds(
    layout: StoreLayout, feature_sets: Sequence[FeatureSet], *, window: ClipWindow, channel_views: Sequence[str]
) -> bool:
    """Whether the store exists with these settings and every set with the same config: what
    :meth:`FeatureStore.ensure` would accept without creating or changing anything. Read-only."""
    try:
        group = open_features(layout, mode="r")
    except StoreError:
        return False
    attrs = _store_attrs(window, channel_views)
    if TRACK_ID not in group or {k: group.attrs.get(k) for k in attrs} != attrs:
        return False
    return all(fs.name in group and group[fs.name].attrs.get("config_hash") == fs.config_hash for fs in feature_sets)


def _store_attrs(window: ClipWindow, channel_views: Sequence[str]) -> dict[str, Any]:
    """The settings a store is made with; every later run must ask for the same."""
    return {"format": FORMAT_VERSION, "window_s": window.seconds, "channel_views": list(channel_views)}


class FeatureStore:
    """The flow's handle on the arrays: declares feature sets, checks configs, allocates rows."""

    def __init__(self, layout: StoreLayout) -> None:
        self.layout = layout
        self.group = open_features(layout, mode="a")

    @property
    def n_rows(self) -> int:
        return int(self.group[TRACK_ID].shape[0]) if TRACK_ID in self.group else 0

    @property
    def channel_views(self) -> tuple[str, ...]:
        return tuple(self.group.attrs.get("channel_views", ("mid",)))

    def ensure(self, feature_sets: Sequence[FeatureSet], *, window: ClipWindow, channel_views: Sequence[str]) -> None:
        """Create what is missing and check what exists against the request.

        Raises
        ------
        StoreError
            The store was made with another clip window, other channel views, or a feature set of
            the same name with other parameters (its arrays would no longer be comparable).
        """
        unknown = set(channel_views) - set(CHANNEL_VIEWS)
        if unknown or not channel_views:
            raise ParameterError(f"channel views must be a subset of {CHANNEL_VIEWS}, got {list(channel_views)}")
        attrs = _store_attrs(window, channel_views)
        if TRACK_ID not in self.group:
            self.group.attrs.update(attrs)
            self.group.create_array(TRACK_ID, shape=(0,), chunks=(ID_CHUNK,), dtype=str, fill_value="")
        else:
            found = {k: self.group.attrs.get(k) for k in attrs}
            if found != attrs:
                raise StoreError(
                    f"{self.layout.features} was made with {json.dumps(found)}; this run asks for "
                    f"{json.dumps(attrs)}. Use another store root for other settings."
                )
        for fs in feature_sets:
            self._ensure_set(fs, window)

    def _ensure_set(self, fs: FeatureSet, window: ClipWindow) -> None:
        if fs.name in self.group:
            stored = self.group[fs.name].attrs.get("config_hash")
            if stored != fs.config_hash:
                raise StoreError(
                    f"{self.layout.features}/{fs.name} holds config {stored}, this run computes "
                    f"{fs.config_hash}: bump the feature set's name or version, or use a new store"
                )
            return
        n_frames = fs.n_frames(round(window.seconds * fs.sample_rate))
        group = self.group.create_group(fs.name)
        group.attrs.update({"config": fs.config(), "config_hash": fs.config_hash, "n_frames": n_frames})
        group.create_array(
            "data",
            shape=(self.n_rows, fs.n_bins, n_frames),
            chunks=(1, fs.n_bins, n_frames),
            dtype="float16",
            fill_value=np.nan,
            compressors=[CHUNK_CODEC],
            dimension_names=("row", "bin", "frame"),
        )

    def allocate(self, n_rows: int) -> int:
        """Grow every array by ``n_rows`` (once per run); returns the first new row."""
        start = self.n_rows
        arrays = [self.group[TRACK_ID]] + [self.group[name]["data"] for name in self.feature_set_names]
        for array in arrays:
            array.resize((start + n_rows, *array.shape[1:]))
        return start

    @property
    def feature_set_names(self) -> list[str]:
        return sorted(name for name, _ in self.group.groups())

    def record_track_ids(self, rows: Sequence[int], track_ids: Sequence[str]) -> None:
        """Write the track id of each committed row ("" frees a row; the flow is this array's only
        writer). Only the chunks holding ``rows`` are read and rewritten, wherever in the store they lie."""
        if not len(rows):
            return
        self.group[TRACK_ID].set_coordinate_selection(
            np.asarray(rows, dtype=np.int64), np.asarray(track_ids, dtype=object)
        )


class FeatureWriter:
    """A shard's writer: whole rows (= whole chunks) inside its own :class:`RowRange` only.

    Consecutive rows are buffered and stored in blocks of up to ``rows_per_write``: one zarr write
    call per track and set cost as much as computing a feature set. Call :meth:`flush` before
    reporting the rows as written.
    """

    def __init__(self, layout: StoreLayout, rows: RowRange, *, rows_per_write: int = ROWS_PER_WRITE) -> None:
        self.rows = rows
        self.rows_per_write = rows_per_write
        self.group = open_features(layout, mode="r+")
        self._arrays: dict[str, zarr.Array] = {}
        self._pending: dict[str, tuple[int, list[np.ndarray]]] = {}  # set -> (first row, blocks)

    def write(self, feature_set: str, row: int, values: np.ndarray) -> None:
        """Queue ``values`` (float32 [shape=(n_views, n_bins, n_frames)]) for rows ``row..row+n_views-1``."""
        last = row + values.shape[0] - 1
        if row not in self.rows or last not in self.rows:
            raise StoreError(f"rows {row}..{last} fall outside this shard's range {self.rows}")
        array = self._array(feature_set)
        if values.shape[1:] != array.shape[1:]:
            raise StoreError(f"{feature_set}: got shape {values.shape[1:]}, the store holds {array.shape[1:]}")
        start, blocks = self._pending.get(feature_set, (row, []))
        if row != start + sum(len(block) for block in blocks):  # not adjacent: store what is queued first
            self._store(feature_set)
            start, blocks = row, []
        blocks.append(values.astype(np.float16))
        self._pending[feature_set] = (start, blocks)
        if sum(len(block) for block in blocks) >= self.rows_per_write:
            self._store(feature_set)

    def flush(self) -> None:
        """Store every queued row."""
        for feature_set in list(self._pending):
            self._store(feature_set)

    def _store(self, feature_set: str) -> None:
        start, blocks = self._pending.pop(feature_set, (0, []))
        if blocks:
            values = np.concatenate(blocks)
            self._array(feature_set)[start : start + len(values)] = values

    def _array(self, feature_set: str) -> zarr.Array:
        if feature_set not in self._arrays:
            self._arrays[feature_set] = self.group[feature_set]["data"]
        return self._arrays[feature_set]


def read_rows(layout: StoreLayout, feature_set: str, rows: Sequence[int] | slice) -> np.ndarray:
    """Feature arrays of the given rows, float16 [shape=(len(rows), n_bins, n_frames)]."""
    array = open_features(layout)[feature_set]["data"]
    if isinstance(rows, slice):
        return array[rows]
    return array.get_orthogonal_selection((np.asarray(rows), slice(None), slice(None)))


def store_attrs(layout: StoreLayout) -> dict[str, Any]:
    """The store-wide settings (window, channel views, format)."""
    return dict(open_features(layout).attrs)
