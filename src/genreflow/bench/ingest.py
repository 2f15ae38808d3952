"""``genreflow bench ingest``: the ingest flow against a plain serial baseline, in one run."""

from __future__ import annotations

import dataclasses
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from genreflow.bench.baseline import serial_mel_baseline
from genreflow.bench.clips import make_clips, make_gtzan_wav, synthetic_catalogue
from genreflow.infra.settings import Settings
from genreflow.pipeline.ingest import ShardRun


def bench_ingest(settings: Settings, *, tracks: int, seconds: float, directory: Path | None) -> str:
    """Generate ``tracks`` stereo 44.1-kHz MP3 clips and time baseline, mel128 on 1 worker, all sets on 2."""
    from genreflow.flows.runtime import run_ingest

    workdir = Path(directory or tempfile.mkdtemp(prefix="genreflow-bench-"))
    clips = make_clips(workdir / "clips", tracks, seconds)
    baseline_s = serial_mel_baseline(clips, workdir / "baseline")
    costs = feature_costs(clips[0])
    diff_s = manifest_diff_seconds(100_000)
    runs = {}
    configurations = (
        ("mel128, 1 worker", 1, ["mel128"]),
        ("all 3 sets, 2 workers", 2, ["mel128", "musicnn96", "wavelet"]),
    )
    for label, workers, features in configurations:
        store = workdir / f"store-{workers}"
        shutil.rmtree(store, ignore_errors=True)  # every configuration ingests the whole catalogue afresh
        summary = run_ingest(
            dataclasses.replace(settings, workers=workers),
            source=str(workdir / "clips"),
            store=str(store),
            dataset="unlabelled",
            feature_sets=features,
            shard_size=_shard_size(tracks, workers),
            show_progress=False,
        )
        runs[label] = (workers, summary)
    label, workers, features = configurations[-1]
    ceiling_s = plain_process_seconds(workdir / "clips", workdir / "store-plain", features, processes=workers)
    return _report(tracks, seconds, baseline_s, costs, runs) + (
        f"\n  ceiling, {label} as plain processes (no Prefect, no Dask): "
        f"{tracks / ceiling_s:6.2f} tracks/s = {baseline_s / ceiling_s:4.2f}x baseline"
        f"\n  manifest diff (select_work) of a 100,000-track catalogue, 1 % new: {diff_s:.2f} s"
    )


ALL_SETS = "mel128,musicnn96,wavelet"
FIXED_COST_TRACKS = 10
SERIAL, JOBLIB = "serial loop", "joblib loop, 2 processes"
MEL_RUN, ALL_RUN = "genreflow mel128, 2 workers", "genreflow 3 sets, 2 workers"  # read against both loops


def bench_gtzan_wav(
    settings: Settings, *, tracks: int, repeats: int, directory: Path | None, seconds: float = 30.0
) -> str:
    """Whole commands timed from outside on GTZAN-format WAV (22,050 Hz mono 16-bit), medians of
    ``repeats`` paired rounds: the seeds' serial loop, the joblib loop on 2 processes, and genreflow
    ingest (mel128; all three sets; the same again with nothing new; a 10-track catalogue, whose
    time is the fixed cost of a run)."""
    from genreflow.flows.runtime import prepare

    prepare(settings)  # the Prefect server is up before anything is timed, as on any later night
    workdir = Path(directory or tempfile.mkdtemp(prefix="genreflow-bench-"))
    catalogue = workdir / "gtzan"
    paths = make_gtzan_wav(catalogue, tracks, seconds)
    make_gtzan_wav(workdir / "gtzan-small", FIXED_COST_TRACKS, seconds)
    listing = workdir / "paths.txt"
    listing.write_text("".join(f"{path}\n" for path in paths))
    python, baseline = sys.executable, "genreflow.bench.baseline"
    loops = workdir / "loop-output"

    def ingest(source: str, store: str, sets: str) -> list[str]:
        return [python, "-m", "genreflow.cli", "ingest", str(workdir / source), "--store", str(workdir / store),
                "--features", sets, "--workers", "2", "--dataset", "unlabelled"]  # fmt: skip

    rounds = {  # label -> (command, folder it writes afresh, or None to keep it)
        SERIAL: ([python, "-m", baseline, "serial", str(listing), str(loops)], loops),
        JOBLIB: ([python, "-m", baseline, "joblib", str(listing), str(loops)], loops),
        MEL_RUN: (ingest("gtzan", "store-mel", "mel128"), workdir / "store-mel"),
        ALL_RUN: (ingest("gtzan", "store-all", ALL_SETS), workdir / "store-all"),
        "genreflow again, nothing new": (ingest("gtzan", "store-mel", "mel128"), None),
        f"genreflow {FIXED_COST_TRACKS} tracks (fixed cost)": (
            ingest("gtzan-small", "store-small", "mel128"), workdir / "store-small"),
    }  # fmt: skip
    env = {**os.environ, "GENREFLOW_HOME": str(settings.home)}
    times: dict[str, list[float]] = {label: [] for label in rounds}
    for _ in range(repeats):
        for label, (command, fresh) in rounds.items():
            if fresh is not None:
                shutil.rmtree(fresh, ignore_errors=True)
            os.sync()  # the last command's writes are on disk: no command pays for another's writeback
            started = time.perf_counter()
            subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
            times[label].append(time.perf_counter() - started)
    medians = {label: statistics.median(values) for label, values in times.items()}
    return (
        _wav_report(tracks, seconds, medians, repeats)
        + "\n  feature compute per clip, one thread (ms): "
        + (_costs(feature_costs(paths[0])))
    )


def _wav_report(tracks: int, clip_s: float, seconds: dict[str, float], repeats: int) -> str:
    serial, joblib = seconds[SERIAL], seconds[JOBLIB]
    lines = [f"genreflow bench ingest --catalogue gtzan-wav: {tracks} GTZAN-format files "
             f"({clip_s:g} s, 22,050 Hz mono 16-bit WAV), whole commands, median of {repeats}"]  # fmt: skip
    for label, value in seconds.items():
        ratios = "" if label not in (MEL_RUN, ALL_RUN) else (
            f"  = {joblib / value:4.2f}x the joblib loop, {serial / value:4.2f}x the serial loop")  # fmt: skip
        lines.append(f"  {label:<34} {value:7.2f} s{ratios}")
    return "\n".join(lines)


def _costs(costs: dict[str, float]) -> str:
    return ", ".join(f"{name} {ms:.1f}" for name, ms in costs.items())


def _shard_size(tracks: int, workers: int) -> int:
    return max(8, min(128, tracks // (4 * workers)))


def plain_process_seconds(source: Path, store: Path, feature_sets: list[str], *, processes: int) -> float:
    """Seconds to run the ingest shards of ``source`` in a bare process pool, one BLAS thread each.

    This is what the machine allows without any orchestration: the flow's figure is read against
    it (the difference is Prefect and Dask), and it bounds what any flow could reach here.
    """
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from genreflow.pipeline.datasets import scan_catalogue
    from genreflow.pipeline.extract import ExtractionSpec
    from genreflow.pipeline.features import parse_feature_sets
    from genreflow.pipeline.ingest import new_run_id, plan_shards
    from genreflow.pipeline.store import FeatureStore, StoreLayout

    shutil.rmtree(store, ignore_errors=True)
    layout, spec = StoreLayout(str(store)), ExtractionSpec(parse_feature_sets(feature_sets))
    features = FeatureStore(layout)
    features.ensure(spec.feature_sets, window=spec.window, channel_views=spec.channel_views)
    work = scan_catalogue(str(source), dataset="unlabelled")
    shards = plan_shards(
        work,
        run_id=new_run_id(),
        row_start=features.allocate(len(work)),
        rows_per_track=1,
        shard_size=_shard_size(len(work), processes),
    )
    started = time.perf_counter()
    with ProcessPoolExecutor(processes, mp_context=get_context("spawn")) as pool:
        list(pool.map(_run_shard_single_threaded, shards, [spec] * len(shards), [layout] * len(shards)))
    return time.perf_counter() - started


def _run_shard_single_threaded(shard: Any, spec: Any, layout: Any) -> None:
    from threadpoolctl import threadpool_limits

    from genreflow.pipeline.extract import run_shard

    with threadpool_limits(1):
        run_shard(shard, spec, layout)


def manifest_diff_seconds(n_tracks: int) -> float:
    """Time the diff every nightly run does before decoding anything, on a synthetic catalogue."""
    from genreflow.pipeline.features import MEL128
    from genreflow.pipeline.ingest import select_work

    catalogue, manifest = synthetic_catalogue(n_tracks)
    started = time.perf_counter()
    select_work(catalogue, manifest, feature_sets=[MEL128])
    return time.perf_counter() - started


def feature_costs(path: Path, repeats: int = 15) -> dict[str, float]:
    """Median milliseconds per clip window (30 s) of each feature set's compute (decode excluded).

    Measured as a worker runs it: one BLAS/FFT thread, the sets interleaved so that machine noise
    hits them alike.
    """
    from threadpoolctl import threadpool_limits

    from genreflow.pipeline.audio import ClipWindow, decode_clip, resample
    from genreflow.pipeline.features import FEATURE_SETS

    clip = decode_clip(str(path), window=ClipWindow())
    inputs = {
        name: np.ascontiguousarray(resample(clip.view("mid"), orig_sr=clip.sample_rate, target_sr=fs.sample_rate))
        for name, fs in FEATURE_SETS.items()
    }
    times: dict[str, list[float]] = {name: [] for name in FEATURE_SETS}
    with threadpool_limits(1):
        for name, fs in FEATURE_SETS.items():
            fs.compute(inputs[name], sr=fs.sample_rate)  # warm the cached filterbanks
        for _ in range(repeats):
            for name, fs in FEATURE_SETS.items():
                started = time.perf_counter()
                fs.compute(inputs[name], sr=fs.sample_rate)
                times[name].append(time.perf_counter() - started)
    return {name: 1000 * statistics.median(values) for name, values in times.items()}


def _report(tracks: int, seconds: float, baseline_s: float, costs: dict[str, float], runs: dict[str, Any]) -> str:
    base_rate = tracks / baseline_s
    lines = [
        f"genreflow bench ingest: {tracks} clips of {seconds:g} s (stereo 44.1 kHz MP3)",
        f"  serial baseline (librosa.load + melspectrogram + np.save): {base_rate:6.2f} tracks/s",
    ]
    for label, (workers, summary) in runs.items():
        rate = summary.selected / summary.wall_s
        ideal = summary.compute_s / workers
        overhead = summary.wall_s / ideal - 1 if ideal else float("nan")
        peaks = _peaks_by_worker(summary.shards)
        lines.append(
            f"  ingest flow, {label}: {rate:6.2f} tracks/s = {rate / base_rate:4.2f}x baseline; "
            f"flow wall {summary.wall_s:.1f} s vs shard compute {summary.compute_s:.1f} s / {workers} "
            f"= overhead {100 * overhead:.0f}%"
        )
        lines.append(f"    peak worker RSS (MiB) per worker, first shard -> last shard: {peaks}")
    lines.append(
        "  feature compute per 30-s clip (ms): "
        + _costs(costs)
        + f"; wavelet/mel128 = {costs['wavelet'] / costs['mel128']:.2f}x"
    )
    return "\n".join(lines)


def _peaks_by_worker(shards: Sequence[ShardRun]) -> str:
    by_pid: dict[int, list[float]] = {}
    for shard in shards:
        by_pid.setdefault(shard.pid, []).append(shard.peak_rss / 2**20)
    return "; ".join(f"{values[0]:.0f} -> {values[-1]:.0f}" for values in by_pid.values())
