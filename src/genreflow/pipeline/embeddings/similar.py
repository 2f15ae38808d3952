"""``more like this``: the tracks nearest to a catalogue track, or to an audio file embedded on the fly."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..scoring.predict import file_mean
from ..scoring.scorers import load_scorer, resolve_model
from ..store import StoreLayout
from ..store.embeddings import normalise
from ..store.scores import ScoresLayout
from .index import Neighbour, read_index


@dataclass(frozen=True)
class SimilarResult:
    """A query's answer: the nearest tracks, best first, from the index of ``model@version``.

    ``query`` is a track id (left out of its own answer) or a file (embedded the way ``predict``
    scores one: the mean over overlapping windows of its whole length, so a catalogue file finds
    itself first).
    """

    query: str
    kind: str  # "track" or "file"
    model: str
    version: str
    index: str  # "exact" or "hnsw"
    tracks: int
    neighbours: tuple[Neighbour, ...]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def find_similar(layout: StoreLayout, query: str, *, model: str, k: int) -> SimilarResult:
    """The ``k`` tracks nearest to ``query``: an existing file's path, else a track id.

    Raises
    ------
    StoreError
        The model version has no index yet (``genreflow embed`` builds it).
    ParameterError
        The track id has no embedding.
    DecodeError
        The file cannot be decoded.
    """
    started = time.perf_counter()
    ref = resolve_model(layout, model)
    index = read_index(ScoresLayout(layout.embeddings, layout.storage_options), ref)
    if index is None:
        raise StoreError(f"{layout.embeddings}: no embeddings of {ref} yet; run `genreflow embed --model {ref}`")
    path = Path(query)
    if path.is_file():
        mean, _ = file_mean(path, load_scorer(layout, ref, output="embedding"))
        neighbours, kind = index.neighbours(normalise(mean[None, :])[0], k), "file"
    else:
        neighbours, kind = index.neighbours(index.vector(query), k, exclude=query), "track"
    return SimilarResult(query, kind, ref.name, ref.version, index.kind, len(index), neighbours,
                         time.perf_counter() - started)  # fmt: skip
