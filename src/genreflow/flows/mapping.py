"""Where a flow's mapped tasks run, and following them as they finish: the flows' shared loop and
progress bar."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar

from prefect import get_run_logger
from prefect.context import FlowRunContext
from prefect.futures import as_completed
from tqdm import tqdm

from genreflow.infra.dask_cluster import dashboard_link, start_local_workers_early, task_runner
from genreflow.infra.settings import Settings
from genreflow.tasks.reports import publish_dashboard


class HasTracks(Protocol):
    tracks: Sequence[Any]


Item = TypeVar("Item", bound=HasTracks)


_SHARED: ContextVar[dict[str, Any] | None] = ContextVar("genreflow_shared_workers", default=None)


@contextlib.contextmanager
def shared_workers() -> Iterator[None]:
    """Inside the block, the steps share one set of workers: started by the first step with work,
    stopped when the block ends (a night pays one cluster start and TensorFlow import, not one a step)."""
    with contextlib.ExitStack() as stack:
        token = _SHARED.set({"stack": stack, "runner": None})
        try:
            yield
        finally:
            _SHARED.reset(token)


@contextlib.contextmanager
def workers(settings: Settings | None) -> Iterator[Any]:
    """A task runner for one step of a flow: the Dask workers ``settings`` describe, started on entry
    and stopped on exit (inside :func:`shared_workers`, kept for the next step), so a flow that
    finds nothing to do starts none; ``None``: the flow's own."""
    if settings is None:
        context = FlowRunContext.get()
        yield context.task_runner
        return
    shared = _SHARED.get()
    if shared is not None:
        if shared["runner"] is None:
            start_local_workers_early(settings)  # if not started yet (or by another Prefect API's settings)
            shared["runner"] = shared["stack"].enter_context(task_runner(settings))
            _announce_dashboard(shared["runner"])
        yield shared["runner"]
        return
    start_local_workers_early(settings)
    with task_runner(settings) as runner:
        _announce_dashboard(runner)
        yield runner


def _announce_dashboard(runner: Any) -> None:
    """Start the workers, and say where their Dask dashboard is: the run log (shown with --verbose)
    and a link artifact on the run, as Dask users expect."""
    link = dashboard_link(runner)
    get_run_logger().info("Dask dashboard: %s", link)
    if link:
        publish_dashboard(link)


def track_bar(total: int, *, desc: str, show_progress: bool) -> tqdm:
    """A bar counting tracks, with its rate and time left (off without ``show_progress``, or when
    stderr is not a terminal): a backfill keeps one across its batches."""
    return tqdm(total=total, unit="track", desc=desc, disable=None if show_progress else True)


def as_they_finish(futures: Sequence[Any], items: Sequence[Item], *, bar: tqdm) -> Iterator[tuple[Item, Any]]:
    """Each mapped item with its task's outcome, in completion order, counting its tracks on ``bar``.

    The outcome is the task's return value, or the exception of a task that failed after its
    retries: the caller decides what that costs, and the other items go on. Each Dask future is
    released once its outcome is read (:func:`_release`).
    """
    item_of = {id(future): item for future, item in zip(futures, items, strict=True)}
    for future in as_completed(futures):
        item = item_of[id(future)]
        outcome = future.result(raise_on_failure=False)
        _release(future)
        yield item, outcome
        bar.update(len(item.tracks))


def _release(future: Any) -> None:
    """Let Dask forget a task's result once the flow holds it: a result still held for the flow is
    computed again when the worker keeping it dies (a finished shard or chunk run twice, delaying
    those still to run, and its task run left "Running" when the flow ends first: seen with a worker
    SIGKILLed mid-scoring). A thread runner's futures have nothing to release."""
    release = getattr(getattr(future, "wrapped_future", None), "release", None)
    if callable(release):
        release()
