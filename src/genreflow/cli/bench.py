"""``genreflow bench ingest|train|score|nightly|similar|models``: throughput against what a user would run
instead, and (``models``) each recipe's cross-validated accuracy on one generated catalogue."""

from __future__ import annotations

import argparse
from pathlib import Path

from genreflow.bench import models as models_bench
from genreflow.cli.common import add_command, add_runtime, given, names, option, positive_float, positive_int, settings
from genreflow.pipeline.demo_config import DIFFICULTIES

CLIP_TRACKS = 120
SIMILAR_TRACKS = 100_000  # the catalogue size the similar figures are quoted for


def register(sub: argparse._SubParsersAction) -> None:
    parser = add_command(
        sub,
        "bench",
        help="measure throughput against a plain serial baseline; compare model recipes (models)",
        handler=handle,
    )
    parser.add_argument("what", choices=["ingest", "train", "score", "nightly", "similar", "models"])
    parser.add_argument("--patches", type=positive_int, default=256, help="train: patches timed (default 256)")
    tracks_help = (
        f"clips to generate (default {CLIP_TRACKS}; similar: embeddings, {SIMILAR_TRACKS}; "
        f"models: demo tracks, {models_bench.DEFAULT_TRACKS})"
    )
    parser.add_argument("--tracks", type=positive_int, default=None, help=tracks_help)
    parser.add_argument("--dim", type=positive_int, default=200, help="similar: floats per embedding (default 200)")
    parser.add_argument("--queries", type=positive_int, default=1000, help="similar: queries timed (default 1000)")
    parser.add_argument("--seconds", type=positive_float, default=30.0, help="clip length (default 30)")
    parser.add_argument("--catalogue", choices=["mp3", "gtzan-wav"], default="mp3",
                        help="ingest: stereo 44.1 kHz MP3 (decoding-bound), or GTZAN's 22,050 Hz mono WAV timed as "
                             "whole commands against the serial and joblib loops (default mp3)")  # fmt: skip
    parser.add_argument("--repeats", type=positive_int, default=1,
                        help="ingest --catalogue gtzan-wav: paired rounds, medians reported (default 1)")  # fmt: skip
    parser.add_argument("--new", type=counts, default=[100, 1000], metavar="N,N",
                        help="nightly: tracks arriving before each further night (default 100,1000)")  # fmt: skip
    parser.add_argument("--plan-tracks", type=positive_int, default=1_000_000,
                        help="nightly: catalogue size whose planning is timed (default 1000000)")  # fmt: skip
    option(parser, "--folds", type=fold_count, help="models: cross-validation folds",
           default_from=lambda: models_bench.DEFAULT_FOLDS)  # fmt: skip
    option(parser, "--recipes", type=names, metavar="NAME,NAME", help="models: the recipes compared",
           default_from=lambda: ",".join(models_bench.known_recipes()))  # fmt: skip
    option(parser, "--difficulty", choices=DIFFICULTIES, help="models: the demo catalogue generated (see make-demo)",
           default_from=lambda: models_bench.DEFAULT_DIFFICULTY)  # fmt: skip
    parser.add_argument("--dir", type=Path, default=None, help="working folder (default: a temporary one)")
    add_runtime(parser, store_default=None)  # every bench makes its stores inside its working folder


def counts(text: str) -> list[int]:
    """``100,1000``: how many tracks arrive before each further night."""
    return [positive_int(part) for part in names(text)]


def fold_count(text: str) -> int:
    """``--folds``: one test, one valid and at least one training fold."""
    folds = positive_int(text)
    if folds < 3:
        raise argparse.ArgumentTypeError(f"expected an integer of at least 3 (test, valid, train), got {text!r}")
    return folds


def handle(args: argparse.Namespace) -> int:
    if args.what == "models":
        chosen = models_bench.choose_recipes(args.recipes)  # an unknown name is one line, before any work
        bench = models_bench.bench_models(settings(args, store_required=False), recipes=chosen, directory=args.dir,
                                          **given(args, "tracks", "folds", "difficulty"))  # fmt: skip
        print(bench.table())
        return 0
    if args.what == "similar":  # no flow, no store: the index alone
        from genreflow.bench.similar import bench_similar

        print(bench_similar(tracks=args.tracks or SIMILAR_TRACKS, dim=args.dim, queries=args.queries))
        return 0
    args.tracks = args.tracks or CLIP_TRACKS
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
    elif args.catalogue == "gtzan-wav":
        from genreflow.bench.ingest import bench_gtzan_wav

        print(bench_gtzan_wav(resolved, tracks=args.tracks, repeats=args.repeats, directory=args.dir,
                             seconds=args.seconds))  # fmt: skip
    else:
        from genreflow.bench.ingest import bench_ingest

        print(bench_ingest(resolved, tracks=args.tracks, seconds=args.seconds, directory=args.dir))
    return 0
