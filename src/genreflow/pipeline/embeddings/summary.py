"""What an embedding run did, in one typed summary the CLI, the artifacts and the nightly report read."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..scoring.summary import UnscoredTrack
from .index import IndexBuild


@dataclass(frozen=True)
class EmbedSummary:
    """One ``embed`` run: tracks selected (new, changed, or all), embedded, failed while tried, not
    even tried (``unscorable``), rows retired (tracks gone or moved), the index as left, timings.

    ``changed`` says whether any embedding file got or lost a row; the index is rebuilt only then
    (or when it was not built from the files there now).
    """

    model: str
    version: str
    store: str
    embeddings: str
    selected: int
    embedded: int
    failed: int
    unscorable: int
    failures: tuple[UnscoredTrack, ...]
    retired: int
    dim: int
    changed: bool
    index: IndexBuild
    n_patches: int
    tasks: int
    plan_s: float
    compute_s: float
    wall_s: float

    @property
    def tracks_per_s(self) -> float:
        return self.embedded / self.wall_s if self.wall_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "tracks_per_s": round(self.tracks_per_s, 3)}
