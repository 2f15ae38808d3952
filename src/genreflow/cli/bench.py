"""``genreflow bench ingest|train|score``: throughput against what a user would run instead."""

from __future__ import annotations

import argparse
from pathlib import Path

from genreflow.cli.common import add_command, add_runtime, names, positive_float, positive_int, settings


def register(sub: argparse._SubParsersAction) -> None:
    parser = add_command(sub, "bench", help="measure throughput against a plain serial baseline", handler=handle)
    parser.add_argument("what", choices=["ingest", "train", "score", "nightly"])
    parser.add_argument("--patches", type=positive_int, default=256, help="train: patches timed (default 256)")
    parser.add_argument("--tracks", type=positive_int, default=120, help="clips to generate (default 120)")
    parser.add_argument("--seconds", type=positive_float, default=30.0, help="clip length (default 30)")
    parser.add_argument("--new", type=counts, default=[100, 1000], metavar="N,N",
                        help="nightly: tracks arriving before each further night (default 100,1000)")  # fmt: skip
    parser.add_argument("--plan-tracks", type=positive_int, default=1_000_000,
                        help="nightly: catalogue size whose planning is timed (default 1000000)")  # fmt: skip
    parser.add_argument("--dir", type=Path, default=None, help="working folder (default: a temporary one)")
    add_runtime(parser, store_default="inside the working folder")


def counts(text: str) -> list[int]:
    """``100,1000``: how many tracks arrive before each further night."""
    return [positive_int(part) for part in names(text)]


def handle(args: argparse.Namespace) -> int:
    resolved = settings(args, store_required=False)
    if args.what == "train":
        from genreflow.bench.train import bench_train
        from genreflow.flows.runtime import prepare

        prepare(resolved)
        print(bench_train(resolved, patches=args.patches, directory=args.dir))
    elif args.what == "score":
        from genreflow.bench.score import bench_score

        print(bench_score(resolved, tracks=args.tracks, seconds=args.seconds, directory=args.dir))
    elif args.what == "nightly":
        from genreflow.bench.nightly import bench_nightly

        print(bench_nightly(resolved, tracks=args.tracks, new=args.new, seconds=args.seconds,
                            plan_tracks=args.plan_tracks, directory=args.dir))  # fmt: skip
    else:
        from genreflow.bench.ingest import bench_ingest

        print(bench_ingest(resolved, tracks=args.tracks, seconds=args.seconds, directory=args.dir))
    return 0
