"""The embeddings' files and their index, without a model: unit vectors in fixed-size lists, exact and
HNSW answers that agree, and an index rebuilt only from the files there now."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from genreflow.bench.similar import bench_similar, synthetic_embeddings
from genreflow.pipeline.embeddings.index import INDEX_TABLE, build_index, current_index, read_index, rebuild_index
from genreflow.pipeline.errors import ParameterError
from genreflow.pipeline.registry import ModelRef
from genreflow.pipeline.store.embeddings import embeddings_schema, embeddings_table, vectors_of
from genreflow.pipeline.store.scores import ScoresLayout, rewrite_part

REF = ModelRef("genre", "v1")
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _write(root: ScoresLayout, shard: int, ids: list[str], vectors: np.ndarray) -> None:
    schema = embeddings_schema(REF.name, REF.version, vectors.shape[1])
    table = embeddings_table(schema, track_ids=ids, uris=[f"/a/{i}.wav" for i in ids], feature_set="musicnn96",
                             embedded_at=T0, n_windows=[3] * len(ids), vectors=vectors)  # fmt: skip
    rewrite_part(root, REF.name, REF.version, shard, schema=schema, new_rows=table)


def test_embeddings_are_unit_fixed_size_lists_readable_as_a_dataset(tmp_path):
    root = ScoresLayout(str(tmp_path / "embeddings"))
    _write(root, 0, ["b", "a", "z"], np.array([[3.0, 4.0, 0.0], [0.0, 0.0, 2.0], [0.0, 0.0, 0.0]]))
    part = tmp_path / "embeddings/model=genre/version=v1/part-000000.parquet"
    schema = pq.read_schema(part)
    assert schema.field("embedding").type == pa.list_(pa.float32(), 3)
    assert schema.field("embedded_at").type == pa.timestamp("us", tz="UTC")
    assert schema.metadata[b"genreflow.embeddings_schema"] == b"1" and schema.metadata[b"genreflow.dim"] == b"3"
    table = pq.read_table(part)
    assert table["track_id"].to_pylist() == ["a", "b", "z"]  # sorted, as score files are
    np.testing.assert_allclose(vectors_of(table), [[0, 0, 1], [0.6, 0.8, 0], [0, 0, 0]], rtol=1e-6)  # zero stays zero
    frame = pd.read_parquet(tmp_path / "embeddings")
    assert set(frame["model"].astype(str)) == {"genre"} and len(frame) == 3


def test_hnsw_answers_agree_with_exact_search_on_a_synthetic_catalogue():
    vectors, queries = synthetic_embeddings(4000, 48, seed=3)
    ids = [f"t{i}" for i in range(len(vectors))]
    exact = build_index(ids, ids, vectors, exact_below=len(vectors) + 1)
    hnsw = build_index(ids, ids, vectors, exact_below=len(vectors))
    assert (exact.kind, hnsw.kind) == ("exact", "hnsw")
    _, truth = exact.search(queries[:300], 10)
    similarities, found = hnsw.search(queries[:300], 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth, strict=True)])
    assert recall >= 0.95
    assert (np.diff(similarities, axis=1) <= 1e-6).all()  # best first
    brute = np.sort(queries[:300] @ vectors.T, axis=1)[:, ::-1][:, :10]
    np.testing.assert_allclose(exact.search(queries[:300], 10)[0], brute, rtol=1e-5)
    [itself, *_] = hnsw.neighbours(hnsw.vector("t7"), 3)
    assert itself.track_id == "t7" and itself.similarity == pytest.approx(1.0, abs=1e-5)
    assert "t7" not in [n.track_id for n in exact.neighbours(exact.vector("t7"), 10, exclude="t7")]
    assert len(exact.neighbours(exact.vector("t7"), 10, exclude="t7")) == 10
    with pytest.raises(ParameterError, match="no embedding"):
        exact.vector("nobody")
    with pytest.raises(ParameterError, match="48"):
        exact.search(np.ones(5), 3)


@pytest.mark.parametrize("exact_below", [100, 0], ids=["exact", "hnsw"])
def test_index_is_rebuilt_only_from_changed_files_and_goes_with_the_last_embedding(tmp_path, exact_below):
    root = ScoresLayout(str(tmp_path / "embeddings"))
    folder = tmp_path / "embeddings/model=genre/version=v1"
    rng = np.random.default_rng(0)
    _write(root, 0, ["a", "b", "c"], rng.standard_normal((3, 8)))
    _write(root, 1, ["d"], rng.standard_normal((1, 8)))
    assert current_index(root, REF) is None  # parts without an index
    built = rebuild_index(root, REF, exact_below=exact_below)
    kind = "exact" if exact_below else "hnsw"
    assert (built.kind, built.tracks, built.dim, built.rebuilt) == (kind, 4, 8, True)
    assert current_index(root, REF) == type(built)(kind, 4, 8, False, 0.0)
    graphs = sorted(p.name for p in folder.glob("_index-*.faiss"))
    assert len(graphs) == (0 if exact_below else 1)
    index = read_index(root, REF)
    assert sorted(index.track_ids) == ["a", "b", "c", "d"] and index.kind == kind
    assert index.neighbours(index.vector("d"), 1)[0].track_id == "d"

    rewrite_part(root, REF.name, REF.version, 0, drop=["b"])  # a retired track
    assert current_index(root, REF) is None
    rebuild_index(root, REF, exact_below=exact_below)
    assert sorted(read_index(root, REF).track_ids) == ["a", "c", "d"]
    assert len(list(folder.glob("_index-*.faiss"))) == len(graphs)  # the old graph is gone
    for shard, ids in ((0, ["a", "c"]), (1, ["d"])):
        rewrite_part(root, REF.name, REF.version, shard, drop=ids)
    assert rebuild_index(root, REF).kind == "none" and read_index(root, REF) is None
    assert sorted(p.name for p in folder.iterdir()) == [] and current_index(root, REF).kind == "none"
    assert not (folder / INDEX_TABLE).exists()


def test_bench_similar_reports_both_indexes_and_the_recall():
    result = bench_similar(tracks=3000, dim=16, queries=50)
    assert (result.tracks, result.dim, result.queries) == (3000, 16, 50) and result.recall >= 0.95
    assert result.hnsw.build_s > 0 and result.exact.mean_ms > 0 and "| hnsw |" in str(result)
