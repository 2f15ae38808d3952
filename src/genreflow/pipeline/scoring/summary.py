"""What a scoring run did: its failures table brought up to date, and its typed summary."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from ..registry import ModelRef
from ..store.scores import ScoresLayout, read_failures, write_failures
from .scorers import ModelInfo
from .shard import ChunkScores, ScoreChunk


@dataclass(frozen=True)
class UnscoredTrack:
    """A track of the model version with no current score, and why (``failed_at``: when it was listed)."""

    track_id: str
    uri: str
    reason: str
    failed_at: str


@dataclass(frozen=True)
class ScoreSummary:
    """What a scoring run did: what the CLI prints, the artifacts show and the exit code is read from.

    ``failed`` counts the tracks this run tried and could not score; ``unscorable`` the selected
    tracks it could not even try (ingest failed, feature set missing, unknown id); ``failures`` is
    the version's whole failures table after the run (``_failures.csv``).
    """

    model: str
    version: str
    kind: str
    mode: str
    store: str
    scores: str
    selected: int
    scored: int
    failed: int
    unscorable: int
    failures: tuple[UnscoredTrack, ...]
    retired: int
    top_labels: dict[str, int]
    below_threshold: int
    threshold: float
    n_patches: int
    tasks: int
    plan_s: float
    compute_s: float
    wall_s: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def record_failures(
    scores: ScoresLayout,
    ref: ModelRef,
    unscorable: pd.DataFrame,
    attempted: Sequence[dict[str, str]],
    *,
    planned: Sequence[ScoreChunk],
) -> pd.DataFrame:
    """Bring the version's failures table up to date and write it: earlier failures this run did not
    resolve, plus this run's own (``unscorable``: listed by the plan; ``attempted``: tried and failed).

    A failure listed before for the same reason keeps its first ``failed_at``, so a run that changes
    nothing leaves the table as it was (and unwritten)."""
    now = datetime.now(UTC).isoformat()
    fresh = pd.concat([unscorable, pd.DataFrame(list(attempted), columns=["track_id", "uri", "reason"])])
    fresh = fresh.drop_duplicates("track_id", keep="last")
    succeeded = {t.track_id for c in planned for t in c.tracks} - {f["track_id"] for f in attempted}
    earlier = read_failures(scores, ref.name, ref.version)
    since = {(t, r): at for t, r, at in earlier[["track_id", "reason", "failed_at"]].itertuples(index=False)}
    fresh = fresh.assign(
        failed_at=[since.get((t, r), now) for t, r in fresh[["track_id", "reason"]].itertuples(index=False)]
    )
    earlier = earlier[~earlier["track_id"].isin(succeeded | set(fresh["track_id"]))]
    table = pd.concat([earlier, fresh], ignore_index=True).sort_values("track_id").reset_index(drop=True)
    write_failures(scores, ref.name, ref.version, table)
    return table


def summarise_scoring(
    info: ModelInfo,
    results: Sequence[ChunkScores],
    *,
    attempted: Sequence[dict[str, str]],
    failures: pd.DataFrame,
    threshold: float,
    **run: Any,
) -> ScoreSummary:
    """The run's summary from its chunk results; ``run`` carries the run's facts (``mode``, ``store``,
    ``scores``, ``selected``, ``unscorable``, ``retired``, ``tasks``, ``plan_s``, ``wall_s``)."""
    probabilities = np.concatenate([r.outputs for r in results]) if results else np.zeros((0, len(info.labels)))
    top_labels = Counter(info.labels[i] for i in probabilities.argmax(axis=1))
    return ScoreSummary(
        model=info.ref.name,
        version=info.ref.version,
        kind=info.kind,
        scored=len(probabilities),
        failed=len(attempted),
        failures=tuple(UnscoredTrack(**record) for record in failures.to_dict("records")),
        top_labels=dict(top_labels.most_common()),
        below_threshold=int((probabilities.max(axis=1, initial=0.0) < threshold).sum()),
        threshold=threshold,
        n_patches=sum(r.n_patches for r in results),
        compute_s=sum(r.seconds for r in results),
        **run,
    )
