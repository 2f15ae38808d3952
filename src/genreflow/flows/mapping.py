"""Following a mapped task as it finishes: the flows' shared loop and progress bar."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol, TypeVar

from prefect.futures import as_completed
from tqdm import tqdm


class HasTracks(Protocol):
    tracks: Sequence[Any]


Item = TypeVar("Item", bound=HasTracks)


def as_they_finish(
    futures: Sequence[Any], items: Sequence[Item], *, desc: str, show_progress: bool
) -> Iterator[tuple[Item, Any]]:
    """Each mapped item with its task's outcome, in completion order, behind a bar counting tracks.

    The outcome is the task's return value, or the exception of a task that failed after its
    retries: the caller decides what that costs, and the other items go on.
    """
    item_of = {id(future): item for future, item in zip(futures, items, strict=True)}
    total = sum(len(item.tracks) for item in items)
    with tqdm(total=total, unit="track", desc=desc, disable=None if show_progress else True) as bar:
        for future in as_completed(futures):
            item = item_of[id(future)]
            yield item, future.result(raise_on_failure=False)
            bar.update(len(item.tracks))
