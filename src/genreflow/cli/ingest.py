"""``genreflow ingest SOURCE --store ROOT``: new and changed tracks into the feature store;
``genreflow backfill SOURCE --store ROOT``: the same for a whole catalogue, batch by batch."""

from __future__ import annotations

import argparse

from genreflow.cli.common import (
    add_allow_empty_source,
    add_command,
    add_json,
    add_runtime,
    add_wait,
    given,
    names,
    non_negative_float,
    option,
    positive_float,
    positive_int,
    report,
    settings,
)
from genreflow.pipeline import ingest_config as defaults


def register(sub: argparse._SubParsersAction) -> None:
    ingest = add_command(sub, "ingest", help="decode new or changed tracks into the feature store", handler=handle)
    add_arguments(ingest)
    backfill = add_command(
        sub, "backfill", handler=handle,
        help="ingest a whole catalogue in batches, each committed as it finishes: stop it anywhere (even kill -9) "
             "and the same command goes on where it stopped",
    )  # fmt: skip
    add_arguments(backfill)
    backfill.set_defaults(backfill=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``ingest`` and ``backfill`` (one flow under two names)."""
    parser.add_argument("source", help="folder or s3://bucket/prefix holding the audio")
    add_wait(parser)
    add_runtime(parser)
    option(parser, "--dataset", choices=["auto", *defaults.DATASETS],
           help="catalogue layout; auto recognises GTZAN, FMA and UrbanSound8K by their metadata",
           default_from=lambda: defaults.DEFAULT_DATASET)  # fmt: skip
    option(parser, "--fma-subset", choices=defaults.FMA_SUBSETS, help="FMA: which subset's audio",
           default_from=lambda: defaults.DEFAULT_FMA_SUBSET)  # fmt: skip
    option(parser, "--features", dest="feature_sets", type=names, metavar="SETS",
           help="comma-separated feature sets: mel128, musicnn96, wavelet",
           default_from=lambda: defaults.DEFAULT_FEATURE_SETS)  # fmt: skip
    option(parser, "--shard-size", type=positive_int, help="tracks per task",
           default_from=lambda: defaults.DEFAULT_SHARD_SIZE)  # fmt: skip
    option(parser, "--batch-tracks", type=positive_int,
           help="tracks allocated, decoded and committed together: what a killed run can lose",
           default_from=lambda: defaults.DEFAULT_BATCH_TRACKS)  # fmt: skip
    option(parser, "--window-s", type=positive_float,
           help="seconds stored per track, the centred window (default: the store's; for a new store "
                f"{defaults.DEFAULT_WINDOW_S:g}, or the dataset's own: UrbanSound8K's clips are shorter)")  # fmt: skip
    option(parser, "--min-duration-s", type=non_negative_float, help="shorter tracks fail",
           default_from=lambda: defaults.DEFAULT_MIN_DURATION_S)  # fmt: skip
    option(parser, "--channel-views", type=names, metavar="VIEWS",
           help="rows per track: mid, or mid,left,right (seed 002's channel split)",
           default_from=lambda: defaults.DEFAULT_CHANNEL_VIEWS)  # fmt: skip
    parser.add_argument("--retry-failed", action="store_true", help="decode again files that failed before")
    add_allow_empty_source(parser)
    add_json(parser)


def handle(args: argparse.Namespace) -> int:
    from genreflow.console import describe_ingest, ingest_exit_code
    from genreflow.flows.runtime import run_ingest

    summary = run_ingest(
        settings(args, store_required=True),
        source=args.source,
        retry_failed=args.retry_failed,
        backfill=getattr(args, "backfill", False),
        allow_empty_source=args.allow_empty_source,
        **given(args, "dataset", "fma_subset", "feature_sets", "shard_size", "batch_tracks", "window_s",
                "min_duration_s", "channel_views", "wait_s"),
    )  # fmt: skip
    return report(summary, describe_ingest, ingest_exit_code, as_json=args.json)
