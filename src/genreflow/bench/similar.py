"""``genreflow bench similar``: query latency of the exact and the HNSW index on a synthetic catalogue of
unit vectors, and the HNSW index's recall@k against the exact answers, in one run.

The catalogue is clustered (tracks scattered around a few hundred "styles"), as embeddings of real
music are; uniformly random vectors have no neighbourhoods to find and flatter no index.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from genreflow.pipeline.embeddings.index import EmbeddingIndex, build_index
from genreflow.pipeline.store.embeddings import normalise

STYLES_PER_TRACK = 500  # one cluster centre per this many tracks


@dataclass(frozen=True)
class IndexTiming:
    """One index: its build seconds, and single-query latency (mean and 95th percentile, ms)."""

    kind: str
    build_s: float
    mean_ms: float
    p95_ms: float


@dataclass(frozen=True)
class SimilarBench:
    tracks: int
    dim: int
    queries: int
    k: int
    exact: IndexTiming
    hnsw: IndexTiming
    recall: float  # of the HNSW index's k answers, the share the exact search also gives

    def __str__(self) -> str:
        rows = [
            f"similar: {self.tracks:,} tracks × {self.dim} floats, {self.queries} single queries, k = {self.k}",
            "| index | build s | mean ms / query | p95 ms | recall@k |",
            "|---|---|---|---|---|",
        ]
        for timing, recall in ((self.exact, 1.0), (self.hnsw, self.recall)):
            rows.append(f"| {timing.kind} | {timing.build_s:.2f} | {timing.mean_ms:.3f} | {timing.p95_ms:.3f} | "
                        f"{recall:.4f} |")  # fmt: skip
        return "\n".join(rows)


def synthetic_embeddings(n: int, dim: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` catalogue vectors and as many fresh queries from the same clusters, unit length, float32."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // STYLES_PER_TRACK), dim)).astype(np.float32)

    def draw(m: int) -> np.ndarray:
        spread = 0.8 * rng.standard_normal((m, dim)).astype(np.float32)
        return normalise(centres[rng.integers(0, len(centres), m)] + spread)

    return draw(n), draw(n)


def bench_similar(*, tracks: int, dim: int, queries: int, k: int = 10, seed: int = 0) -> SimilarBench:
    """Build both indexes over ``tracks`` synthetic embeddings and time ``queries`` single queries on each."""
    vectors, fresh = synthetic_embeddings(tracks, dim, seed=seed)
    asked = fresh[:queries]
    ids = [f"t{i}" for i in range(tracks)]
    timings, answers = {}, {}
    for kind, exact_below in (("exact", tracks + 1), ("hnsw", 0)):
        started = time.perf_counter()
        index = build_index(ids, ids, vectors, exact_below=exact_below)
        build_s = time.perf_counter() - started
        answers[kind], latencies = _answer(index, asked, k)
        timings[kind] = IndexTiming(kind, build_s, float(np.mean(latencies)), float(np.percentile(latencies, 95)))
    found = [len(set(a) & set(b)) / k for a, b in zip(answers["hnsw"], answers["exact"], strict=True)]
    return SimilarBench(tracks, dim, len(asked), k, timings["exact"], timings["hnsw"], float(np.mean(found)))


def _answer(index: EmbeddingIndex, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each query's positions, asked one at a time as ``similar`` asks, and its latency in ms."""
    positions, latencies = [], []
    for query in queries:
        started = time.perf_counter()
        _, found = index.search(query, k)
        latencies.append((time.perf_counter() - started) * 1000)
        positions.append(found[0])
    return np.array(positions), np.array(latencies)
