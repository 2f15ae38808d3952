"""Prefect deployments of the flows, for ``genreflow serve``: ``nightly`` on a cron schedule;
``backfill``, ``train`` and ``score`` on demand (``prefect deployment run 'genreflow-score/score'``, or
the UI).

The flows are named by entrypoint (``module:function``), as ``prefect.yaml`` names them: this layer
imports no flow module (only the light config that owns ``train``'s defaults), and nothing here imports
Prefect at module level, so the CLI can check a cron expression and a timezone before the Prefect API
is prepared (Prefect reads its settings on import).

Deployments carry JSON parameters. ``settings`` goes as a plain object (:func:`settings_parameter`),
and the flows make a :class:`~genreflow.infra.settings.Settings` of it again (``Settings.coerce``:
``home`` a ``Path``) in the flow run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import faulthandler
import importlib
import os
import re
import signal
import sys
import threading
import time
import zoneinfo
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from genreflow.pipeline.errors import ParameterError
from genreflow.pipeline.training.config import DEFAULT_ARCHITECTURE, DEFAULT_MODEL_NAME

from .settings import Settings

if TYPE_CHECKING:
    from prefect import Flow
    from prefect.deployments.runner import RunnerDeployment

DEFAULT_CRON = "0 2 * * *"  # nightly at 02:00 in the serving machine's zone (or --timezone)
ENTRYPOINTS = {  # deployment name -> the flow it runs
    "nightly": "genreflow.flows.nightly:nightly_flow",
    "backfill": "genreflow.flows.ingest:backfill_flow",
    "train": "genreflow.flows.train:train_flow",
    "score": "genreflow.flows.score:score_flow",
}
TAGS = ("genreflow",)

_CRON_MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (name, lowest, highest, names): minute, hour, day of month, month, day of week (0 and 7 are Sunday)
_CRON_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
_ITEM = re.compile(r"^(?P<range>\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(?P<step>\d+))?$")


def check_cron(expression: str) -> str:
    """``expression`` when it is a five-field cron expression (or ``@daily`` and the like), else a
    :class:`ParameterError` naming the field. Checked without Prefect, which checks it again when
    the schedule is built."""
    text = " ".join(expression.split()).lower()
    if text in _CRON_MACROS:
        return expression.strip()
    fields = text.split(" ")
    if len(fields) != len(_CRON_FIELDS):
        raise ParameterError(
            f"--cron {expression!r}: expected 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"
        )
    for value, (name, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        for item in value.split(","):
            if not _cron_item_ok(item, low, high, names, last=name == "day of month", nth=name == "day of week"):
                raise ParameterError(f"--cron {expression!r}: bad {name} {item!r} (expected {low}-{high})")
    return expression.strip()


def _cron_item_ok(item: str, low: int, high: int, names: tuple[str, ...], *, last: bool, nth: bool) -> bool:
    if last and item == "l":  # the last day of the month
        return True
    if nth and (found := re.fullmatch(r"([a-z0-9]+)#[1-5]", item)):  # fri#2: the second Friday
        item = found.group(1)
    match = _ITEM.match(item)
    if not match or (match["step"] is not None and int(match["step"]) < 1):
        return False
    if match["range"] == "*":
        return True
    bounds = [_cron_value(part, low, names) for part in match["range"].split("-")]  # 5-1 wraps round, as in cron
    return all(b is not None and low <= b <= high for b in bounds)


def _cron_value(text: str, low: int, names: tuple[str, ...]) -> int | None:
    if text.isdigit():
        return int(text)
    return names.index(text) + low if text in names else None


def check_timezone(name: str) -> str:
    """``name`` when it is an IANA zone (``Europe/Paris``, ``UTC``), else a :class:`ParameterError`."""
    if name not in zoneinfo.available_timezones():
        raise ParameterError(f"--timezone {name!r}: not an IANA timezone (for example Europe/Paris or UTC)")
    return name


def local_timezone() -> str:
    """The IANA name of this machine's zone: ``TZ``, else what ``/etc/localtime`` links to, else UTC."""
    zones = zoneinfo.available_timezones()
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    localtime = Path("/etc/localtime")
    if localtime.is_symlink():
        candidates.append(str(localtime.resolve()).partition("zoneinfo/")[2])
    return next((name for name in candidates if name in zones), "UTC")


def settings_parameter(settings: Settings) -> dict[str, Any]:
    """``settings`` as a deployment parameter: a JSON object (``home`` a string)."""
    return {
        key: str(value) if isinstance(value, Path) else value for key, value in dataclasses.asdict(settings).items()
    }


def load_flow(name: str) -> Flow[..., Any]:
    """The flow a deployment runs, from :data:`ENTRYPOINTS`."""
    module, _, attribute = ENTRYPOINTS[name].partition(":")
    return getattr(importlib.import_module(module), attribute)


def nightly_deployment(
    settings: Settings, *, sources: Sequence[str], store: str, cron: str = DEFAULT_CRON, timezone: str | None = None
) -> RunnerDeployment:
    """``genreflow-nightly/nightly``: every source ingested, then scored, on ``cron`` in ``timezone``."""
    from prefect.client.schemas.schedules import CronSchedule

    timezone = check_timezone(timezone or local_timezone())
    try:
        schedule = CronSchedule(cron=check_cron(cron), timezone=timezone)
    except ValueError as error:  # what Prefect refuses beyond check_cron (pydantic's errors are ValueErrors)
        raise ParameterError(f"--cron {cron!r}: {_first_error(error)}") from None
    parameters = {"sources": list(sources), "store": store, **_runtime(settings)}
    return _deployment("nightly", parameters, schedule=schedule)


def backfill_deployment(settings: Settings, *, source: str, store: str) -> RunnerDeployment:
    """``backfill/backfill``, on demand: the whole of ``source`` in batches (a run may name another
    source: ``-p source=URI``)."""
    return _deployment("backfill", {"source": source, "store": store, **_runtime(settings)})


def score_deployment(settings: Settings, *, store: str) -> RunnerDeployment:
    """``genreflow-score/score``, on demand: score the store's new tracks with the production model."""
    return _deployment("score", {"store": store, **_runtime(settings)})


def train_deployment(settings: Settings, *, store: str) -> RunnerDeployment:
    """``genreflow-train/train``, on demand: train the default backbone where the served process runs
    (its GPU if any), register it as ``genre``."""
    parameters = {
        "store": store,
        "backbone": DEFAULT_ARCHITECTURE,  # what `genreflow train` uses unless told
        "model_name": DEFAULT_MODEL_NAME,
        "home": str(settings.home),
        "storage_options": settings.storage_options,
    }
    return _deployment("train", parameters)


def build_deployments(
    settings: Settings, *, sources: Sequence[str], store: str, cron: str = DEFAULT_CRON, timezone: str | None = None
) -> list[RunnerDeployment]:
    """The four served deployments: ``nightly`` on its schedule; ``backfill`` (of the first source),
    ``train`` and ``score`` on demand."""
    if not sources:
        raise ParameterError("at least one --source is required")
    return [
        nightly_deployment(settings, sources=sources, store=store, cron=cron, timezone=timezone),
        backfill_deployment(settings, source=sources[0], store=store),
        train_deployment(settings, store=store),
        score_deployment(settings, store=store),
    ]


def next_runs(deployment: RunnerDeployment, n: int = 3, *, after: datetime | None = None) -> list[datetime]:
    """The next ``n`` run times of the deployment's schedules, computed as Prefect's scheduler does
    (the server's own schedule code), in each schedule's timezone; none for an on-demand deployment."""
    from prefect.server.schemas.schedules import CronSchedule

    dates: list[datetime] = []
    for item in deployment.schedules or []:
        schedule = CronSchedule(**item.schedule.model_dump())
        dates += asyncio.run(schedule.get_dates(n=n, start=after))
    return sorted(dates)[:n]


def _first_error(error: ValueError) -> str:
    errors = getattr(error, "errors", None)
    return str(errors()[0]["msg"]) if callable(errors) and errors() else str(error).splitlines()[0]


def _runtime(settings: Settings) -> dict[str, Any]:
    """Where the served flow runs its tasks: ``settings`` and the S3 options; no progress bars."""
    return {
        "storage_options": settings.storage_options,
        "settings": settings_parameter(settings),
        "show_progress": False,
    }


def serve(deployments: Sequence[RunnerDeployment]) -> None:
    """Register ``deployments`` and run their flow runs from this process until Ctrl-C (or SIGTERM);
    Prefect's runner then pauses their schedules until they are served again.

    Prefect's :class:`~prefect.runner.Runner` (what ``prefect.serve`` and ``Flow.serve`` run), handed
    each deployment's flow (:func:`served_flow`).
    """
    from prefect.exceptions import TerminationSignal
    from prefect.runner import Runner
    from prefect.types.entrypoint import EntrypointType

    runner = Runner(name="genreflow-serve", pause_on_shutdown=True)
    for deployment in deployments:
        runner.add_flow(
            served_flow(deployment.entrypoint),
            name=deployment.name,
            schedules=deployment.schedules,
            parameters=deployment.parameters,
            description=deployment.description,
            tags=deployment.tags,
            enforce_parameter_schema=deployment.enforce_parameter_schema,
            entrypoint_type=EntrypointType.MODULE_PATH,
        )
    try:
        asyncio.run(until_interrupted(runner.start))
    except (KeyboardInterrupt, TerminationSignal):
        return


SHUTDOWN_S = 60.0  # after Ctrl-C, Prefect's runner pauses the schedules and stops its runs within this


async def until_interrupted(start: Callable[[], Awaitable[Any]], *, shutdown_s: float = SHUTDOWN_S) -> None:
    """Await ``start()`` until Ctrl-C, which cancels it (its clean-up runs), then returns.

    The shutdown is bounded: if ``start`` has not finished ``shutdown_s`` after Ctrl-C, or at a second
    Ctrl-C, the stacks of every thread and pending asyncio task go to stderr (where it was stuck),
    then one line saying what may be left behind, and the process exits with 130. A service must
    stop when told.
    """
    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    assert task is not None

    def interrupted(signum: int, frame: FrameType | None) -> None:
        if task.cancelling():  # a second Ctrl-C: stop now
            _exit_stuck(loop, "at a second Ctrl-C")
        threading.Thread(target=_exit_if_still_running, args=(loop, shutdown_s), daemon=True,
                         name="genreflow-shutdown-watchdog").start()  # fmt: skip
        loop.call_soon_threadsafe(task.cancel)

    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        await start()
    except asyncio.CancelledError:
        if not task.cancelling():
            raise  # not ours
    finally:
        signal.signal(signal.SIGINT, previous)


def _awaiting(coroutine: Any) -> Iterator[FrameType]:
    """The frames of a suspended coroutine and of everything it awaits in turn (``Task.print_stack``
    shows only the outermost one)."""
    while coroutine is not None:
        frame = getattr(coroutine, "cr_frame", None) or getattr(coroutine, "gi_frame", None)
        if frame is not None:
            yield frame
        coroutine = getattr(coroutine, "cr_await", None) or getattr(coroutine, "gi_yieldfrom", None)


def _exit_if_still_running(loop: asyncio.AbstractEventLoop, shutdown_s: float) -> None:
    time.sleep(shutdown_s)
    _exit_stuck(loop, f"{shutdown_s:g} s after Ctrl-C")


def _exit_stuck(loop: asyncio.AbstractEventLoop, when: str) -> None:
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    for task in asyncio.all_tasks(loop):  # safe from another thread: it retries a set changed meanwhile
        print(f"pending asyncio task {task.get_name()}, awaiting (outermost first):", file=sys.stderr)
        for frame in _awaiting(task.get_coro()):
            code = frame.f_code
            print(f'  File "{code.co_filename}", line {frame.f_lineno}, in {code.co_name}', file=sys.stderr)
    print(f"genreflow serve: Prefect's runner had not stopped {when}; exiting now (the nightly schedule may "
          "still be active, and a run it started may still be running: check the Prefect UI)",
          file=sys.stderr, flush=True)  # fmt: skip
    os._exit(130)  # 128 + SIGINT, as a shell reports an interrupted command


def served_flow(entrypoint: str) -> Flow[..., Any]:
    """The flow at ``entrypoint`` (``module:name`` or ``module.name``), as the runner hands it to each
    run (its ``settings`` parameter arrives as JSON; the flows take it as a mapping too)."""
    from prefect.utilities.importtools import import_object

    return import_object(entrypoint)


def _deployment(name: str, parameters: dict[str, Any], *, schedule: Any = None) -> RunnerDeployment:
    from prefect.types.entrypoint import EntrypointType

    return served_flow(ENTRYPOINTS[name]).to_deployment(
        name=name,
        schedule=schedule,
        parameters=parameters,
        tags=list(TAGS),
        entrypoint_type=EntrypointType.MODULE_PATH,  # the installed package, wherever the process runs
    )
