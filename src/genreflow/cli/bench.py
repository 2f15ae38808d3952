"""``genreflow bench ingest|train|score``: throughput against what a user would run instead."""

from __future__ import annotations

import argparse
from pathlib import Path

from genreflow.cli.common import add_command, add_runtime, positive_float, positive_int, settings


def register(sub: argparse._SubParsersAction) -> None:
    parser = add_command(sub, "bench", help="measure throughput against a plain serial baseline", handler=handle)
    parser.add_argument("what", choices=["ingest", "train", "score"])
    parser.add_argument("--patches", type=positive_int, default=256, help="train: patches timed (default 256)")
    parser.add_argument("--tracks", type=positive_int, default=120, help="clips to generate (default 120)")
    parser.add_argument("--seconds", type=positive_float, default=30.0, help="clip length (default 30)")
    parser.add_argument("--dir", type=Path, default=None, help="working folder (default: a temporary one)")
    add_runtime(parser, store_default="inside the working folder")


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
    else:
        from genreflow.bench.ingest import bench_ingest

        print(bench_ingest(resolved, tracks=args.tracks, seconds=args.seconds, directory=args.dir))
    return 0
