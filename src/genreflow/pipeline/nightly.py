"""What a night did: the ingest of each source and the scoring of each model, in one typed summary."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .embeddings.summary import EmbedSummary
from .ingest import IngestSummary
from .scoring.summary import ScoreSummary


@dataclass(frozen=True)
class NightlySummary:
    """One night: every source's ingest, every model's scoring, the first model's embeddings (None
    when not kept), totals, and wall seconds per phase.

    ``new`` counts the tracks decoded (new, changed, restored); ``retired`` the files that vanished
    from their source; ``embedded`` the tracks given an embedding; ``labels`` is the top-label
    distribution of the first model's new scores.
    """

    store: str
    ingests: tuple[IngestSummary, ...]
    scorings: tuple[ScoreSummary, ...]
    embedding: EmbedSummary | None
    new: int
    failed: int
    retired: int
    scored: int
    embedded: int
    labels: dict[str, int]
    below_threshold: int
    threshold: float
    phases: dict[str, float]
    wall_s: float

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "embedding": self.embedding.to_dict() if self.embedding else None}


def summarise_night(
    store: str,
    ingests: Sequence[IngestSummary],
    scorings: Sequence[ScoreSummary],
    embedding: EmbedSummary | None = None,
    *,
    threshold: float,
    phases: dict[str, float],
    wall_s: float,
) -> NightlySummary:
    first = scorings[0] if scorings else None
    return NightlySummary(
        store=store,
        ingests=tuple(ingests),
        scorings=tuple(scorings),
        new=sum(i.counts.get("ok", 0) + i.counts.get("failed", 0) for i in ingests),
        embedding=embedding,
        failed=sum(i.counts.get("failed", 0) + len(i.unprocessed) for i in ingests)
        + sum(s.failed for s in scorings)
        + (embedding.failed if embedding else 0),
        retired=sum(i.counts.get("removed", 0) for i in ingests),
        scored=sum(s.scored for s in scorings),
        embedded=embedding.embedded if embedding else 0,
        labels=dict(first.top_labels) if first else {},
        below_threshold=first.below_threshold if first else 0,
        threshold=threshold,
        phases=phases,
        wall_s=wall_s,
    )
