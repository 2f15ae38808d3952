"""``genreflow score --store ROOT``: per-track probabilities of a model to Parquet."""

from __future__ import annotations

import argparse

from genreflow.cli.common import (
    add_command,
    add_json,
    add_model,
    add_runtime,
    add_threshold,
    add_wait,
    given,
    option,
    positive_float,
    positive_int,
    report,
    settings,
)
from genreflow.pipeline.scoring.config import MODES, ScoreSpec

MODEL_HELP = (
    "registered model (its production version, else its newest) or a zero-shot tagger: musicnn-msd-tags, "
    "musicnn-mtt-tags, vgg-msd-tags, vgg-mtt-tags"
)


def register(sub: argparse._SubParsersAction) -> None:
    parser = add_command(sub, "score", help="write per-track probabilities of a model to Parquet", handler=handle)
    add_model(parser, help=MODEL_HELP)
    option(parser, "--tracks", metavar="new|all|FILE",
           help="new: not scored by this version yet, or changed since; all; or a file of track ids",
           default_from=lambda: MODES[0])  # fmt: skip
    parser.add_argument(
        "--full-track", action="store_true", help="decode each whole track again, in overlapping windows"
    )
    option(parser, "--hop-s", type=positive_float, help="full-track window hop (default half a window)")
    parser.add_argument("--out", default=None, help="scores root, folder or s3:// (default <store>/scores)")
    option(parser, "--batch-size", type=positive_int, help="patches per model call",
           default_from=lambda: ScoreSpec.batch_size)  # fmt: skip
    option(parser, "--chunk-size", type=positive_int, help="tracks per task (default: about 8 tasks, 64-256)")
    add_threshold(parser)
    add_json(parser)
    add_wait(parser)
    add_runtime(parser)


def handle(args: argparse.Namespace) -> int:
    from genreflow.console import describe_scoring, score_exit_code
    from genreflow.flows.runtime import run_score

    summary = run_score(
        settings(args, store_required=True),
        full_track=args.full_track,
        out=args.out,
        **given(args, "model", "tracks", "hop_s", "batch_size", "chunk_size", "threshold", "wait_s"),
    )
    return report(summary, describe_scoring, score_exit_code, as_json=args.json)
