"""The nearest-neighbour index beside one model version's embeddings, and searching it.

Cosine similarity is the dot product of the stored unit vectors. Below :data:`~.config.EXACT_BELOW`
tracks the index is the matrix itself (exact answers, nothing to build); above it a faiss HNSW
graph (chosen over usearch by measuring: at 100,000 × 200, 8 s to build against 21 s, 0.16 ms a
query against 0.27 ms, recall@10 0.997 against 0.994; README, "Embeddings").

Beside the ``part-*.parquet`` files of a version (a leading ``_`` keeps both out of Parquet datasets
and ``*.parquet`` globs)::

    _index.arrow                 track_id, uri (and, exact, embedding) in index order; metadata: kind,
                                 dim, the graph's file and the fingerprint of the parts it was built from
    _index-<fingerprint>.faiss   the HNSW graph, written before ``_index.arrow`` names it

``_index.arrow`` is written last, so a reader always finds a whole index, old or new.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import ParameterError
from ..registry import ModelRef
from ..store.embeddings import vectors_of
from ..store.parquet import write_bytes_atomic
from ..store.scores import ScoresLayout
from ..uri import filesystem, join
from .config import EXACT_BELOW

INDEX_TABLE = "_index.arrow"
HNSW_M = 32  # graph degree: at 100,000 × 200, M 16 built slower (11.7 s) and recalled less (0.988)
HNSW_EF_CONSTRUCTION = 64
HNSW_EF_SEARCH = 128  # candidates a query visits: recall@10 1.000 at 0.21 ms (64: 0.997 at 0.16 ms)
_NO_PARTS = hashlib.sha256(b"").hexdigest()[:20]  # the fingerprint of a version without part files


@dataclass(frozen=True)
class Neighbour:
    """One answer: a track and its cosine similarity to the query (1 = the same direction)."""

    track_id: str
    uri: str
    similarity: float


class EmbeddingIndex:
    """Tracks in index order and what searches them: their matrix (exact) or an HNSW graph."""

    def __init__(
        self,
        track_ids: Sequence[str],
        uris: Sequence[str],
        *,
        dim: int,
        vectors: np.ndarray | None = None,
        graph: Any = None,
        fingerprint: str = "",
    ) -> None:
        if (vectors is None) == (graph is None):
            raise ParameterError("an index holds either its vectors (exact) or a graph (hnsw)")
        self.track_ids = list(track_ids)
        self.uris = list(uris)
        self.dim = dim
        self.vectors = vectors
        self.graph = graph
        self.fingerprint = fingerprint
        self._position = {track_id: i for i, track_id in enumerate(self.track_ids)}

    @property
    def kind(self) -> str:
        return "exact" if self.vectors is not None else "hnsw"

    def __len__(self) -> int:
        return len(self.track_ids)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Similarities and positions of the ``k`` nearest tracks of each query, best first
        (float32 and int64 [shape=(n_queries, min(k, len))])."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if queries.shape[1] != self.dim:
            raise ParameterError(f"a query has {queries.shape[1]} values; the index holds {self.dim}")
        k = min(k, len(self))
        if self.graph is not None:
            self.graph.hnsw.efSearch = max(HNSW_EF_SEARCH, k)
            similarities, positions = self.graph.search(queries, k)
            return similarities, positions
        scores = queries @ self.vectors.T
        if k < len(self):
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        else:
            top = np.tile(np.arange(k), (len(queries), 1))
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        positions = np.take_along_axis(top, order, axis=1)
        return np.take_along_axis(scores, positions, axis=1), positions

    def neighbours(self, query: np.ndarray, k: int, *, exclude: str | None = None) -> tuple[Neighbour, ...]:
        """The ``k`` tracks most similar to one query vector, best first, without ``exclude``."""
        similarities, positions = self.search(query, k + (exclude is not None))
        found = [
            Neighbour(self.track_ids[p], self.uris[p], round(float(s), 6))
            for s, p in zip(similarities[0], positions[0], strict=True)
            if p >= 0 and self.track_ids[p] != exclude
        ]
        return tuple(found[:k])

    def vector(self, track_id: str) -> np.ndarray:
        """The stored unit vector of ``track_id``.

        Raises
        ------
        ParameterError
            The track is not in the index.
        """
        if track_id not in self._position:
            raise ParameterError(f"track {track_id!r} has no embedding in this index ({len(self)} tracks)")
        position = self._position[track_id]
        if self.vectors is not None:
            return self.vectors[position]
        return self.graph.reconstruct(position)


def build_index(
    track_ids: Sequence[str],
    uris: Sequence[str],
    vectors: np.ndarray,
    *,
    exact_below: int = EXACT_BELOW,
    threads: int | None = None,
    fingerprint: str = "",
) -> EmbeddingIndex:
    """An exact index of fewer than ``exact_below`` unit vectors, else an HNSW graph over them
    (built with ``threads`` CPU threads; None: faiss' default, every core)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = vectors.shape[1]
    if len(vectors) < exact_below:
        return EmbeddingIndex(track_ids, uris, dim=dim, vectors=vectors, fingerprint=fingerprint)
    import faiss

    if threads is not None:
        faiss.omp_set_num_threads(threads)
    graph = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
    graph.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    graph.add(vectors)
    return EmbeddingIndex(track_ids, uris, dim=dim, graph=graph, fingerprint=fingerprint)


@dataclass(frozen=True)
class IndexBuild:
    """What keeping a version's index current did: ``kind`` (``exact``, ``hnsw``, or ``none`` with no
    embeddings), its tracks and dimension, whether it was rebuilt, and the seconds it took."""

    kind: str
    tracks: int
    dim: int
    rebuilt: bool
    seconds: float


def parts_fingerprint(root: ScoresLayout, ref: ModelRef) -> str:
    """A digest of the version's part files (name, size, modification time or ETag): it changes
    whenever a file is written or removed, so an index built from other files is stale."""
    fs, folder = filesystem(root.version_dir(ref.name, ref.version), root.storage_options)
    entries = fs.ls(folder, detail=True) if fs.isdir(folder) else []
    stamps = sorted(
        f"{e['name'].rsplit('/', 1)[-1]}:{e.get('size')}:{e.get('ETag') or e.get('mtime') or e.get('LastModified')}"
        for e in entries
        if e["name"].endswith(".parquet")
    )
    return hashlib.sha256("\n".join(stamps).encode()).hexdigest()[:20]


def read_index(root: ScoresLayout, ref: ModelRef) -> EmbeddingIndex | None:
    """The version's index as last written, or None when it has none."""
    fs, path = filesystem(_file(root, ref, INDEX_TABLE), root.storage_options)
    if not fs.exists(path):
        return None
    table = pa.ipc.open_file(io.BytesIO(fs.cat_file(path))).read_all()
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    ids, uris = table["track_id"].to_pylist(), table["uri"].to_pylist()
    dim = int(meta["genreflow.dim"])
    if meta["genreflow.index_kind"] == "exact":
        return EmbeddingIndex(ids, uris, dim=dim, vectors=vectors_of(table), fingerprint=meta["genreflow.fingerprint"])
    import faiss

    graph_fs, graph_path = filesystem(_file(root, ref, meta["genreflow.graph"]), root.storage_options)
    graph = faiss.deserialize_index(np.frombuffer(graph_fs.cat_file(graph_path), dtype=np.uint8))
    return EmbeddingIndex(ids, uris, dim=dim, graph=graph, fingerprint=meta["genreflow.fingerprint"])


def current_index(root: ScoresLayout, ref: ModelRef) -> IndexBuild | None:
    """The version's index, described, when it was built from the part files there now (``none``
    when there are neither parts nor an index); None when it must be rebuilt."""
    fingerprint = parts_fingerprint(root, ref)
    fs, path = filesystem(_file(root, ref, INDEX_TABLE), root.storage_options)
    if not fs.exists(path):
        return IndexBuild("none", 0, 0, False, 0.0) if fingerprint == _NO_PARTS else None
    reader = pa.ipc.open_file(io.BytesIO(fs.cat_file(path)))
    meta = reader.schema.metadata
    if meta.get(b"genreflow.fingerprint", b"").decode() != fingerprint:
        return None
    tracks = sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))
    return IndexBuild(meta[b"genreflow.index_kind"].decode(), tracks, int(meta[b"genreflow.dim"]), False, 0.0)


def rebuild_index(
    root: ScoresLayout, ref: ModelRef, *, exact_below: int = EXACT_BELOW, threads: int | None = None
) -> IndexBuild:
    """Build the version's index from all its part files and write it (see the module's layout);
    with no embeddings left, remove it."""
    started = time.perf_counter()
    fingerprint = parts_fingerprint(root, ref)
    fs, folder = filesystem(root.version_dir(ref.name, ref.version), root.storage_options)
    parts = sorted(p for p in fs.ls(folder, detail=False) if p.endswith(".parquet")) if fs.isdir(folder) else []
    tables = [pq.read_table(p, filesystem=fs, columns=["track_id", "uri", "embedding"]) for p in parts]
    if not tables:
        _remove_index(root, ref, keep_graph=None, keep_table=False)
        return IndexBuild("none", 0, 0, True, time.perf_counter() - started)
    table = pa.concat_tables(tables)
    index = build_index(table["track_id"].to_pylist(), table["uri"].to_pylist(), vectors_of(table),
                        exact_below=exact_below, threads=threads, fingerprint=fingerprint)  # fmt: skip
    graph_name = None
    columns = {"track_id": table["track_id"], "uri": table["uri"]}
    if index.kind == "exact":
        columns["embedding"] = table["embedding"]
    else:
        import faiss

        graph_name = f"_index-{fingerprint}.faiss"
        data = faiss.serialize_index(index.graph).tobytes()
        write_bytes_atomic(data, _file(root, ref, graph_name), storage_options=root.storage_options)
    metadata = {"genreflow.index_kind": index.kind, "genreflow.dim": str(index.dim),
                "genreflow.fingerprint": fingerprint, "genreflow.graph": graph_name or ""}  # fmt: skip
    listing = pa.table(columns).replace_schema_metadata(metadata)
    sink = io.BytesIO()
    with pa.ipc.new_file(sink, listing.schema) as writer:
        writer.write_table(listing)
    write_bytes_atomic(sink.getvalue(), _file(root, ref, INDEX_TABLE), storage_options=root.storage_options)
    _remove_index(root, ref, keep_graph=graph_name, keep_table=True)
    return IndexBuild(index.kind, len(index), index.dim, True, time.perf_counter() - started)


def _remove_index(root: ScoresLayout, ref: ModelRef, *, keep_graph: str | None, keep_table: bool) -> None:
    """Remove every graph but ``keep_graph`` and, unless ``keep_table``, the index table."""
    fs, folder = filesystem(root.version_dir(ref.name, ref.version), root.storage_options)
    if not fs.isdir(folder):
        return
    for path in fs.ls(folder, detail=False):
        name = path.rsplit("/", 1)[-1]
        stale_graph = name.startswith("_index-") and name.endswith(".faiss") and name != keep_graph
        if stale_graph or (not keep_table and name == INDEX_TABLE):
            fs.rm(path)


def _file(root: ScoresLayout, ref: ModelRef, name: str) -> str:
    return join(root.version_dir(ref.name, ref.version), name)
