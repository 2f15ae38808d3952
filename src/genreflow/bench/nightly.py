"""``genreflow bench nightly``: what a night costs on a stored catalogue (nothing new, then batches of new
tracks), a backfill's throughput on 1 and 2 workers, and what planning a catalogue of a million tracks
costs, in one run."""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TypeVar

from genreflow.bench.clips import make_clips, synthetic_catalogue
from genreflow.infra.settings import Settings

MODEL = "musicnn-msd-tags"  # a zero-shot tagger: the night scores without a trained model
BACKFILL_BATCHES = 4  # the backfill runs its catalogue in this many batches, so batching is in the figure
BACKFILL_SCALING = 1.7  # the target for 2 workers against 1: what two bare processes reach here
T = TypeVar("T")


def bench_nightly(
    settings: Settings,
    *,
    tracks: int,
    new: Sequence[int],
    seconds: float,
    plan_tracks: int,
    directory: Path | None,
    backfill_workers: Sequence[int] = (1, 2),
) -> str:
    """Wall seconds of whole nightly runs on a store of ``tracks`` (the first night stores and scores
    them all), an empty night, then nights with each of ``new`` tracks arriving; a backfill of the
    whole catalogue into a new store on each of ``backfill_workers`` local workers; and the planning
    cost (diff, retirements, row allocation) of a ``plan_tracks`` catalogue, with its peak memory."""
    from genreflow.flows.runtime import prepare, run_nightly

    prepare(settings)
    workdir = Path(directory or tempfile.mkdtemp(prefix="genreflow-bench-nightly-"))
    source, store = workdir / "clips", str(workdir / "store")
    lines = [
        f"genreflow bench nightly: {tracks} stored MP3 clips of {seconds:g} s, {MODEL}, workers {settings.workers}"
    ]
    make_clips(source, tracks, seconds)
    nights = [("first night (every track new)", 0), ("empty night", 0), *((f"{n} new", n) for n in new)]
    total = tracks
    for label, arriving in nights:
        if arriving:  # copies of the same clips behind distinct tags: new files, new content-hash ids
            total += arriving
            make_clips(source, total, seconds)
        started = time.perf_counter()
        night = run_nightly(settings, sources=[str(source)], store=store, models=[MODEL], show_progress=False)
        wall_s = time.perf_counter() - started
        lines.append(
            f"  {label:32s} {wall_s:7.1f} s  (ingested {night.new}, scored {night.scored}; flow "
            + ", ".join(f"{phase} {s:.1f} s" for phase, s in night.phases.items())
            + ")"
        )
    lines += backfill_rates(settings, source, workdir, tracks=total, workers=backfill_workers)
    seconds_, peak_mib = planning_cost(plan_tracks, workdir / "plan-store")
    lines.append(
        f"  planning a {plan_tracks:,}-track catalogue (diff, retirements, row allocation): {seconds_:.1f} s, "
        f"peak {peak_mib:,.0f} MiB in its process (targets: under 30 s and 2 GiB for 1,000,000)"
    )
    return "\n".join(lines)


def backfill_rates(
    settings: Settings, source: Path, workdir: Path, *, tracks: int, workers: Sequence[int]
) -> list[str]:
    """One line per worker count: a backfill of the ``tracks`` of ``source`` into a new store (decode
    and features of every track, in :data:`BACKFILL_BATCHES` batches on real worker processes), in
    tracks per second, and its ratios to the first count's and to the same backfill on 1 worker
    confined to one core (its process, its workers and their threads), which runs first: one
    unconfined worker's decode threads already reach into a second core, which a second worker then
    cannot add. Each backfill runs in a fresh process of its own, so each starts its workers alike.
    """
    batch_tracks = -(-tracks // BACKFILL_BATCHES)

    def backfill(count: int, name: str, cores: set[int] | None = None) -> BackfillRun:
        runner = dataclasses.replace(settings, workers=count, in_process_tracks=0)  # real worker processes
        return _in_fresh_process(_timed_backfill, runner, source, str(workdir / name), batch_tracks, cores=cores)

    confined = backfill(1, "backfill-1-worker-1-core", cores={min(os.sched_getaffinity(0))})
    lines = [
        f"  backfill on 1 worker, 1 core        {confined.wall_s:7.1f} s  ({confined.selected} tracks in "
        f"{confined.batches} batches, {confined.rate:.1f} tracks/s; ran on cores {sorted(confined.cores)}, "
        f"{confined.busy_cores:.2f} busy)"
    ]
    rates: list[float] = []
    for count in workers:
        run = backfill(count, f"backfill-{count}-workers")
        rates.append(run.rate)
        ratios = [f"{run.rate / rates[0]:.2f}x {workers[0]}"] if len(rates) > 1 else []
        ratios.append(f"{run.rate / confined.rate:.2f}x 1 worker on 1 core")
        lines.append(
            f"  backfill on {count} worker(s)           {run.wall_s:7.1f} s  ({run.selected} tracks in "
            f"{run.batches} batches, {run.rate:.1f} tracks/s, {', '.join(ratios)} (target {BACKFILL_SCALING}x); "
            f"{run.busy_cores:.2f} of {os.cpu_count()} cores busy)"
        )
    return lines


@dataclass(frozen=True)
class BackfillRun:
    """One timed backfill: tracks decoded, batches, wall seconds, the cores its process could use and
    how many of the machine's cores were busy meanwhile."""

    selected: int
    batches: int
    wall_s: float
    cores: frozenset[int]
    busy_cores: float

    @property
    def rate(self) -> float:
        return self.selected / self.wall_s


def _in_fresh_process(function: Callable[..., T], *args: Any, cores: set[int] | None = None) -> T:
    """``function(*args)`` in a spawned process of its own, so its memory and start-up are its own
    (confined to ``cores``: the processes it starts inherit them)."""
    with ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=_confine, initargs=(cores,)) as pool:
        return pool.submit(function, *args).result()


def _confine(cores: set[int] | None) -> None:
    if cores:
        os.sched_setaffinity(0, cores)


def _timed_backfill(settings: Settings, source: Path, store: str, batch_tracks: int) -> BackfillRun:
    import psutil

    from genreflow.flows.runtime import run_ingest

    started, cpu_before = time.perf_counter(), psutil.cpu_times()
    summary = run_ingest(settings, source=str(source), store=store, backfill=True, batch_tracks=batch_tracks,
                         show_progress=False)  # fmt: skip
    wall_s = time.perf_counter() - started
    busy = _busy_cores(cpu_before, psutil.cpu_times(), wall_s)
    return BackfillRun(summary.selected, summary.batches, wall_s, frozenset(os.sched_getaffinity(0)), busy)


def _busy_cores(before: Any, after: Any, wall_s: float) -> float:
    """How many cores the machine kept busy over ``wall_s`` (all processes: the flow, its workers, the
    Prefect server): what says whether one worker already uses every core, so that a second cannot
    add throughput."""
    idle = (after.idle - before.idle) + (getattr(after, "iowait", 0.0) - getattr(before, "iowait", 0.0))
    total = sum(after) - sum(before)
    return (total - idle) / wall_s if wall_s > 0 else 0.0


def planning_cost(n_tracks: int, store: Path) -> tuple[float, float]:
    """Seconds and peak resident MiB of one night's planning on a synthetic catalogue of ``n_tracks``
    (1 % new, 0.5 % vanished), in a fresh process so its memory is its own."""
    return _in_fresh_process(_plan, n_tracks, str(store))


def _plan(n_tracks: int, store: str) -> tuple[float, float]:
    import resource

    from genreflow.pipeline.audio import ClipWindow
    from genreflow.pipeline.features import parse_feature_sets
    from genreflow.pipeline.ingest import select_work, vanished
    from genreflow.pipeline.ingest_config import DEFAULT_FEATURE_SETS
    from genreflow.pipeline.store import FeatureStore, StoreLayout

    catalogue, manifest = synthetic_catalogue(n_tracks)
    listing = catalogue.drop(index=catalogue.index[: n_tracks // 200])  # 0.5 % deleted since
    sets = parse_feature_sets(list(DEFAULT_FEATURE_SETS))
    started = time.perf_counter()
    work = select_work(listing, manifest, feature_sets=sets)
    vanished(listing, manifest, source="s3://catalogue", run_id="bench")
    features = FeatureStore(StoreLayout(store))
    features.ensure(sets, window=ClipWindow(), channel_views=("mid",))
    features.allocate(len(work))
    seconds = time.perf_counter() - started
    return seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
