"""What ``embed`` and ``similar`` do unless told. Light on purpose (no numpy): ``--help`` reads these."""

from __future__ import annotations

DEFAULT_K = 10  # neighbours a query returns
# Below this many tracks the index is the matrix itself, searched exactly: 10,000 × 200 floats take
# about 0.7 ms a query here, and an exact answer costs no build. Above it, a faiss HNSW graph
# (0.16-0.21 ms at 100,000 tracks, recall@10 0.997-1.000; `genreflow bench similar`).
EXACT_BELOW = 10_000
